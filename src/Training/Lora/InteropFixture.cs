using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Lora;

/// <summary>
/// Inputs for scripts/check_peft_interop.py: for each Hugging Face layout, a tiny random base checkpoint, a LoRA adapter
/// on it (B random, so a dropped key shows in the logits) and the merged checkpoint, as <c>higgs adapter merge</c>
/// writes them. Both layouts hold the same weights, so the script may also compare them with each other.
/// </summary>
public static class InteropFixture
{
    public const long AudioIn = 100, AudioOut = 101, Pad = 102;

    /// <summary>Every layer dual-FFN, no tower: the one architecture both layouts can describe.</summary>
    public static HiggsAudioConfig TinyConfig(WeightsLayout layout) => new()
    {
        Text = new LlamaTextConfig
        {
            VocabSize = 128, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 8, RmsNormEps = 1e-5, RopeTheta = 500000,
            RopeScaling = new RopeScaling("llama3", 32, 1, 4, 8192),
        },
        AdapterType = AudioAdapterType.DualFfn, DualFfnLayers = new[] { 0, 1 },
        SkipAudioTower = true, EncodeWhisperEmbed = false, EncodeAudioInTokens = true, UseDelayPattern = true,
        AudioNumCodebooks = 4, AudioCodebookSize = 8, AudioStreamBosId = 8, AudioStreamEosId = 9,
        AudioInTokenIdx = AudioIn, AudioOutTokenIdx = AudioOut, PadTokenId = Pad,
        Layout = layout,
    };

    /// <summary>The LoRA the fixture trains: the usual targets plus the text head, whose path differs most between layouts.</summary>
    public static LoraConfig Lora => new()
    {
        R = 4, Alpha = 8, Dropout = 0,
        TargetModules = LoraConfig.DefaultTargets.Append("text_lm_head").ToArray(),
        BaseModelNameOrPath = "tiny-higgs-fixture",
    };

    /// <summary>Writes OUT/{boson,transformers}/{base,adapter,merged}; returns the layout folders.</summary>
    public static IReadOnlyList<string> Write(string outDir, long seed = 7)
    {
        var written = new List<string>();
        foreach (var layout in new[] { WeightsLayout.Boson, WeightsLayout.TransformersV2 })
        {
            using var scope = NewDisposeScope();
            var dir = Path.Combine(outDir, LayoutKeys.Name(layout));
            var baseDir = Path.Combine(dir, "base");
            var model = new HiggsAudioModel(TinyConfig(layout), ScalarType.Float32, CPU);
            ModelWeights.RandomInit(model, seed);
            ModelWeights.Save(model, baseDir);
            // A merged folder is expected to carry the base's side files; one is enough to show the copy in PEFT runs.
            File.WriteAllText(Path.Combine(baseDir, "generation_config.json"), $"{{\"pad_token_id\": {Pad}, \"do_sample\": false}}\n");
            var adapter = LoraAdapter.Attach(model, Lora, init: new Generator((ulong)seed + 1));
            using (no_grad())
            {
                var g = new Generator((ulong)seed + 2);
                foreach (var (key, p) in adapter.NamedParameters())
                    if (key.Contains(".lora_B.", StringComparison.Ordinal)) p.copy_(randn(p.shape, generator: g).Times(0.1));
            }
            adapter.Save(Path.Combine(dir, "adapter"));
            var mergedDir = Path.Combine(dir, "merged");
            adapter.MergeAndExport(mergedDir, configJson: WeightsFolder.ConfigFor(baseDir, ScalarType.Float32, ScalarType.Float32));
            WeightsFolder.CopySideFiles(baseDir, mergedDir);
            written.Add(dir);
        }
        return written;
    }
}
