using System.Collections;
using System.Text.Json;
using HiggsCluster.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// Writes random-weight tokenizers in the real folder layout (config.json, hubert_config.json, model.safetensors and
/// optionally model.pth) for tests, benchmarks and demos. Weight-norm gains deliberately differ from ‖v‖.
/// </summary>
public static class TinyTokenizerWriter
{
    /// <summary>The tiny architecture of the goldens: D 16, codebook_dim 8, 32 bins, 8 codebooks, widths 2/32, HuBERT 7×16 → 32, 2 layers.</summary>
    public static TokenizerSizes TinySizes { get; } = new(16, 8, 32, 8, [8, 5, 4, 2, 3], 24000, 16000, 2, 32,
        new HubertSizes(Enumerable.Repeat(16, 7).ToArray(), [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2], 32, 2, 4, 64, 128, 16, 1e-5));

    public static TokenizerConfig ConfigFor(TokenizerSizes s) =>
        new(s.D, s.CodebookDim, s.Bins, s.NQ, s.Ratios, s.SampleRate, TokenizerSizes.KnownTeacher);

    /// <summary>A random state_dict in the original key layout (every key, training-only ones included).</summary>
    public static Dictionary<string, Tensor> RandomStateDict(TokenizerSizes s, long seed)
    {
        var gen = new torch.Generator((ulong)seed);
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var noGrad = torch.no_grad();
        foreach (var k in TokenizerKeyLayout.Build(s))
        {
            var n = k.Name;
            Tensor Randn() => randn(k.Shape, generator: gen);
            Tensor Uniform(double lo, double hi) => rand(k.Shape, generator: gen).Times(hi - lo).Plus(lo);
            long fanIn = k.Shape.Length > 1 ? k.Shape.Skip(1).Aggregate(1L, (a, b) => a * b) : 1;
            Tensor t;
            if (n.EndsWith(".weight_g", StringComparison.Ordinal)) t = Uniform(0.3, 1.2);
            else if (n.EndsWith(".weight_v", StringComparison.Ordinal)) t = Randn();
            else if (n.EndsWith(".alpha", StringComparison.Ordinal)) t = Uniform(0.2, 1.5);
            else if (n.EndsWith("original0", StringComparison.Ordinal)) t = Uniform(0.2, 0.6);
            else if (n.EndsWith("original1", StringComparison.Ordinal)) t = Randn();
            else if (n.EndsWith("._codebook.inited", StringComparison.Ordinal)) t = ones(k.Shape);
            else if (n.EndsWith("._codebook.cluster_size", StringComparison.Ordinal)) t = ones(k.Shape);
            else if (n.Contains("layer_norm.weight", StringComparison.Ordinal)) t = Randn().Times(0.1).Plus(1);
            else if (n.EndsWith(".bias", StringComparison.Ordinal)) t = Randn().Times(0.05);
            else t = Randn().Over(Math.Sqrt(fanIn));
            d[n] = t.to_type(ScalarType.Float32).contiguous();
        }
        foreach (var k in d.Keys.Where(k => k.EndsWith("._codebook.embed_avg", StringComparison.Ordinal)).ToList())
            d[k] = d[k[..^"_avg".Length]].clone();
        return d;
    }

    /// <summary>Writes config.json, hubert_config.json, model.safetensors and (when asked) model.pth into <paramref name="dir"/>.</summary>
    public static void Write(string dir, TokenizerSizes s, long seed, bool writePth = false)
    {
        Directory.CreateDirectory(dir);
        var opts = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(dir, TokenizerWeights.ConfigFile), ConfigFor(s).ToJson().ToJsonString(opts));
        File.WriteAllText(Path.Combine(dir, TokenizerWeights.HubertConfigFile), s.Hubert.ToJson().ToJsonString(opts));
        using var scope = torch.NewDisposeScope();
        var sd = RandomStateDict(s, seed);
        SafetensorsWriter.Write(Path.Combine(dir, TokenizerWeights.SafetensorsFileName), sd, new Dictionary<string, string> { ["format"] = "pt" });
        if (writePth) WritePth(Path.Combine(dir, TokenizerWeights.PthFileName), sd);
    }

    /// <summary>torch.save-compatible zip of a state_dict.</summary>
    public static void WritePth(string path, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var table = new Hashtable();
        foreach (var (k, v) in stateDict) table[k] = v;
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        using (var f = File.Create(tmp)) TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(f, table);
        File.Move(tmp, path, overwrite: true);
    }
}
