using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

/// <summary>Tiny configurations, checkpoints and batches for the model tests (token ids as in the goldens' README).</summary>
internal static class TinyModels
{
    public const long AudioIn = 100, AudioOut = 101, Pad = 102;

    public static HiggsAudioConfig V2Like(int codebooks = 4, int codebookSize = 8, int layers = 2, int hidden = 32) => new()
    {
        Text = new LlamaTextConfig
        {
            VocabSize = 128, HiddenSize = hidden, IntermediateSize = 2 * hidden, NumHiddenLayers = layers,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = hidden / 4, RmsNormEps = 1e-5, RopeTheta = 500000,
            RopeScaling = new RopeScaling("llama3", 32, 1, 4, 8192),
        },
        AdapterType = AudioAdapterType.DualFfnFastForward,
        DualFfnLayers = Enumerable.Range(0, layers).ToArray(),
        SkipAudioTower = true, EncodeWhisperEmbed = false, EncodeAudioInTokens = true, UseDelayPattern = true,
        AudioNumCodebooks = codebooks, AudioCodebookSize = codebookSize,
        AudioStreamBosId = codebookSize, AudioStreamEosId = codebookSize + 1,
        AudioInTokenIdx = AudioIn, AudioOutTokenIdx = AudioOut, PadTokenId = Pad,
    };

    public static HiggsAudioModel Random(HiggsAudioConfig cfg, long seed = 1)
    {
        var m = new HiggsAudioModel(cfg, ScalarType.Float32, CPU);
        ModelWeights.RandomInit(m, seed);
        return m;
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "higgs-model-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>
    /// Two samples: text, one audio-out segment each (codes wrapped as [bos, codes, eos], labels [-100, codes, eos]),
    /// then trained text. The codes and texts are chosen so that no position's target equals its own input.
    /// </summary>
    public static HiggsBatch TwoSamples(HiggsAudioConfig cfg)
    {
        int k = cfg.AudioNumCodebooks;
        long bos = cfg.AudioStreamBosId, eos = cfg.AudioStreamEosId;
        long[][] text =
        {
            new long[] { 90, 5, 6, 7, 97, AudioOut, 96, 11, 12, 13, 93 },
            new long[] { 90, 21, 22, 97, AudioOut, 96, 31, 32, 33, 34, 93 },
        };
        long[][] codeRows = { new long[] { 0, 1, 2, 3, 4 }, new long[] { 5, 6, 7, 0, 1, 2 } };
        int s = 16;
        var ids = new long[2 * s]; var att = new long[2 * s]; var lab = new long[2 * s];
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < s; i++)
            {
                bool real = i < text[b].Length;
                ids[b * s + i] = real ? text[b][i] : Pad;
                att[b * s + i] = real ? 1 : 0;
                // The first two tokens are untrained (both samples start with 90, so token 1 is not predictable); the rest is trained.
                lab[b * s + i] = real && i >= 2 ? text[b][i] : -100;
            }
        var cols = new List<long[]>(); var labs = new List<long[]>(); var starts = new List<long>();
        long total = 0;
        foreach (var row in codeRows)
        {
            starts.Add(total);
            int t = row.Length + 2;
            for (int j = 0; j < t; j++)
            {
                var col = new long[k]; var lc = new long[k];
                for (int c = 0; c < k; c++)
                {
                    long v = j == 0 ? bos : j == t - 1 ? eos : (row[j - 1] + c) % cfg.AudioCodebookSize;
                    col[c] = v; lc[c] = j == 0 ? -100 : v;
                }
                cols.Add(col); labs.Add(lc);
            }
            total += t;
        }
        Tensor Codes(List<long[]> cs)
        {
            var flat = new long[k * cs.Count];
            for (int c = 0; c < k; c++) for (int n = 0; n < cs.Count; n++) flat[c * cs.Count + n] = cs[n][c];
            return tensor(flat).view(k, cs.Count);
        }
        return new HiggsBatch
        {
            InputIds = tensor(ids).view(2, s), AttentionMask = tensor(att).view(2, s), LabelIds = tensor(lab).view(2, s),
            AudioOutIds = Codes(cols), LabelAudioIds = Codes(labs), AudioOutIdsStart = tensor(starts.ToArray()),
        };
    }
}
