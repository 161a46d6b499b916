using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Demo;

/// <summary>Paths of a demo workspace: data, tokenizers and a tiny random Higgs checkpoint, all in the real formats.</summary>
public sealed record DemoWorkspace(string Root, DemoDatasetFiles Data, string TextTokenizer, string AudioTokenizer, string BaseModel)
{
    /// <summary>
    /// Writes the dataset, the tiny text tokenizer, the tiny audio tokenizer and a random 3B-shaped (every layer dual-FFN,
    /// no Whisper tower, audio-in as codes, delay pattern) Higgs checkpoint whose vocabulary covers the text tokenizer's
    /// ids and whose codebooks match the audio tokenizer's bins.
    /// </summary>
    public static DemoWorkspace Create(string root, int entries = 24, int seed = 0, int hidden = 64, int layers = 2)
    {
        var data = DemoDataset.Write(Path.Combine(root, "data"), entries, seed: seed);
        var textPath = Path.Combine(root, "text_tokenizer", "tokenizer.json");
        TinyTextTokenizerWriter.Write(textPath, data.Texts);
        var audioDir = Path.Combine(root, "audio_tokenizer");
        var sizes = TinyTokenizerWriter.TinySizes;
        TinyTokenizerWriter.Write(audioDir, sizes, seed: seed);
        var text = Text.TextTokenizer.Load(textPath);
        var special = HiggsSpecialTokens.From(text);
        int vocab = Math.Max(text.BaseVocabSize, text.AddedTokens.Values.Max() + 1);
        var cfg = TinyConfig(vocab, sizes.NQ, sizes.Bins, special, hidden, layers);
        var ckDir = Path.Combine(root, "base_model");
        var model = new HiggsAudioModel(cfg, ScalarType.Float32, CPU);
        Model.ModelWeights.RandomInit(model, seed);
        Model.ModelWeights.Save(model, ckDir);
        model.Dispose();
        return new DemoWorkspace(root, data, textPath, audioDir, ckDir);
    }

    public static HiggsAudioConfig TinyConfig(int vocab, int codebooks, int bins, HiggsSpecialTokens special, int hidden = 64, int layers = 2) => new()
    {
        Text = new LlamaTextConfig
        {
            VocabSize = vocab, HiddenSize = hidden, IntermediateSize = hidden * 2, NumHiddenLayers = layers,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = hidden / 4, RmsNormEps = 1e-5, RopeTheta = 10000,
        },
        AdapterType = AudioAdapterType.DualFfn,
        DualFfnLayers = Enumerable.Range(0, layers).ToArray(),
        SkipAudioTower = true, EncodeWhisperEmbed = false, EncodeAudioInTokens = true, UseDelayPattern = true,
        AudioNumCodebooks = codebooks, AudioCodebookSize = bins, AudioStreamBosId = bins, AudioStreamEosId = bins + 1,
        AudioInTokenIdx = special.Audio, AudioOutTokenIdx = special.AudioOut, PadTokenId = special.EndOfText,
    };

    /// <summary>The demo's training settings: a short run that visibly learns on a 2-core CPU in a few minutes.</summary>
    public TrainOptions TrainOptions(string outputDir, int maxSteps = 100) => new()
    {
        Manifest = Data.Manifest, DataRoot = Data.Folder, TextTokenizer = TextTokenizer, AudioTokenizer = AudioTokenizer,
        CodeCache = Path.Combine(Root, "code-cache"), BaseModelDir = BaseModel, OutputDir = outputDir, MaxTokens = 4096,
        ValidationFraction = 0.15, BatchSize = 4, GradAccumulation = 1, MaxSteps = maxSteps, Lr = 3e-3, WarmupSteps = Math.Max(1, maxSteps / 20),
        LoraR = 8, LoraAlpha = 16, LoraDropout = 0.0,
        LoraTargets = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "text_lm_head", "audio_lm_head" },
        ValSteps = Math.Max(1, maxSteps / 4), SaveSteps = Math.Max(1, maxSteps / 2), KeepLast = 2, LogSteps = Math.Max(1, maxSteps / 12),
        WeightDecay = 0.0, Seed = 1234,
        // samples cost a generation per validation; the demo command asks for them, tests that check them do too
        Samples = 0,
    };
}
