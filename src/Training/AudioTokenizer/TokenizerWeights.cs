using System.Collections;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using HiggsCluster.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// A loaded tokenizer checkpoint: sizes plus the tensors encode/decode read, with every weight norm folded into a plain
/// <c>.weight</c> (the original names otherwise). Owns its tensors.
/// </summary>
public sealed class TokenizerWeights : IDisposable
{
    public const string ConfigFile = "config.json";
    public const string HubertConfigFile = "hubert_config.json";
    public const string SafetensorsFileName = "model.safetensors";
    public const string PthFileName = "model.pth";

    private readonly Dictionary<string, Tensor> _weights;

    private TokenizerWeights(TokenizerSizes sizes, Dictionary<string, Tensor> weights, string identity)
    {
        Sizes = sizes; _weights = weights; Identity = identity;
    }

    public TokenizerSizes Sizes { get; }

    /// <summary>sha256 over the sizes and every used (folded) weight: changes whenever codes could change.</summary>
    public string Identity { get; }

    public Tensor this[string name] =>
        _weights.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"tokenizer weight '{name}' not loaded");

    public bool Has(string name) => _weights.ContainsKey(name);

    /// <summary>Where the weights live (CPU after loading).</summary>
    public Device Device { get; private set; } = torch.CPU;

    /// <summary>Moves every weight to <paramref name="device"/> (the identity does not change).</summary>
    public void To(Device device)
    {
        foreach (var k in _weights.Keys.ToList())
        {
            var moved = _weights[k].to(device).DetachFromDisposeScope();
            if (!ReferenceEquals(moved, _weights[k])) _weights[k].Dispose();
            _weights[k] = moved;
        }
        Device = device;
    }

    /// <summary>
    /// Loads a tokenizer folder: config.json, optional hubert_config.json (HuBERT-base when absent), and the weights file
    /// (<paramref name="weightsFile"/> relative to the folder, else model.safetensors, else model.pth).
    /// </summary>
    public static TokenizerWeights Load(string dir, string? weightsFile = null)
    {
        string path;
        if (weightsFile != null) path = Path.Combine(dir, weightsFile);
        else
        {
            path = Path.Combine(dir, SafetensorsFileName);
            if (!File.Exists(path)) path = Path.Combine(dir, PthFileName);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer weights not found in {dir} (looked for {SafetensorsFileName} and {PthFileName})", path);
        return LoadFiles(Path.Combine(dir, ConfigFile), Path.Combine(dir, HubertConfigFile), path);
    }

    /// <summary>Loads from explicit files; a missing <paramref name="hubertConfigPath"/> means HuBERT-base.</summary>
    public static TokenizerWeights LoadFiles(string configPath, string? hubertConfigPath, string weightsPath)
    {
        if (!File.Exists(configPath)) throw new FileNotFoundException($"tokenizer config not found: {configPath}", configPath);
        var json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
            ?? throw new InvalidDataException($"{configPath}: not a JSON object");
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"tokenizer weights not found: {weightsPath}", weightsPath);
        TokenizerConfig config;
        HubertSizes hubert;
        bool transformers = TransformersLayout.IsTransformersConfig(json);
        if (transformers) (config, hubert) = TransformersLayout.ParseConfig(json, configPath);
        else
        {
            config = TokenizerConfig.FromJson(json, configPath);
            hubert = hubertConfigPath != null && File.Exists(hubertConfigPath)
                ? HubertSizes.FromJson(JsonNode.Parse(File.ReadAllText(hubertConfigPath)) as JsonObject
                    ?? throw new InvalidDataException($"{hubertConfigPath}: not a JSON object"), hubertConfigPath)
                : HubertSizes.Base;
        }
        var raw = ReadStateDict(weightsPath);
        try
        {
            var dict = transformers ? TransformersLayout.ToOriginal(raw, config.Ratios.Length, weightsPath) : raw;
            return FromStateDict(config, hubert, dict, weightsPath);
        }
        finally { foreach (var t in raw.Values) t.Dispose(); }
    }

    /// <summary>Reads a safetensors file or a torch.save zip (.pth/.bin) into name → float32 tensor.</summary>
    public static Dictionary<string, Tensor> ReadStateDict(string path)
    {
        using var f = File.OpenRead(path);
        var magic = new byte[4];
        int n = f.Read(magic, 0, 4);
        f.Seek(0, SeekOrigin.Begin);
        if (n == 4 && magic[0] == 0x50 && magic[1] == 0x4b && magic[2] == 0x03 && magic[3] == 0x04)
        {
            Hashtable table;
            try { table = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(f, leaveOpen: true); }
            catch (Exception e) { throw new InvalidDataException($"{path}: cannot read the torch.save archive: {e.Message}", e); }
            var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (DictionaryEntry e in table)
            {
                // torch.save may carry non-tensor entries (e.g. io.BytesIO blobs): only tensors are weights
                if (e.Key is string k && e.Value is Tensor t) d[k] = t;
            }
            return d;
        }
        f.Dispose();
        return SafetensorsFile.ReadAll(path);
    }

    /// <summary>Strictly checks a raw state_dict (original layout) against the sizes, folds the weight norms and keeps used tensors.</summary>
    public static TokenizerWeights FromStateDict(TokenizerConfig config, HubertSizes hubert, IReadOnlyDictionary<string, Tensor> raw, string source)
    {
        if (raw.Keys.Any(k => k.StartsWith("acoustic_encoder.", StringComparison.Ordinal)))
            throw new InvalidDataException($"{source}: keys are in the transformers (2026) layout but the config is the original one; use the matching config.json");
        long Dim0(params string[] keys)
        {
            foreach (var key in keys) if (raw.TryGetValue(key, out var t)) return t.shape[0];
            throw new InvalidDataException($"{source}: missing key '{keys[0]}' (needed to read the model size)");
        }
        var encW = (int)Dim0("encoder.block.0.weight_v", "encoder.block.0.weight");
        var decW = (int)Dim0("decoder_2.model.0.weight_v", "decoder_2.model.0.weight");
        var semDim = (int)Dim0("semantic_model.feature_projection.projection.weight");
        if (semDim != hubert.Hidden)
            throw new InvalidDataException($"{source}: semantic_model.feature_projection.projection.weight has {semDim} rows but the HuBERT config says hidden_size {hubert.Hidden}");
        var sizes = new TokenizerSizes(config.D, config.CodebookDim, config.Bins, config.NQ, config.Ratios, config.SampleRate, 16000, encW, decW, hubert);
        if (sizes.SemanticDownsampleFactor < 1)
            throw new InvalidDataException($"{source}: hop {sizes.HopLength} at {sizes.SampleRate} Hz gives no integer semantic downsample factor");

        var layout = WithPrefoldedWeights(TokenizerKeyLayout.Build(sizes), raw);
        var byName = layout.ToDictionary(k => k.Name, StringComparer.Ordinal);
        var problems = new List<string>();
        var missing = layout.Where(k => k.Role == KeyRole.Used && !raw.ContainsKey(k.Name)).Select(k => k.Name).ToList();
        var unexpected = raw.Keys.Where(k => !byName.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0) problems.Add($"missing keys ({missing.Count}): {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? ", ..." : "")}");
        if (unexpected.Count > 0) problems.Add($"unexpected keys ({unexpected.Count}): {string.Join(", ", unexpected.Take(20))}{(unexpected.Count > 20 ? ", ..." : "")}");
        foreach (var (name, t) in raw)
        {
            if (byName.TryGetValue(name, out var spec) && !t.shape.SequenceEqual(spec.Shape))
                problems.Add($"{name}: shape [{string.Join(",", t.shape)}], expected [{string.Join(",", spec.Shape)}]");
        }
        if (problems.Count > 0) throw new InvalidDataException($"{source}: tokenizer checkpoint does not match the architecture: {string.Join("; ", problems)}");
        foreach (var (name, t) in raw)
        {
            // upstream runs k-means on the first batch when a codebook is not initialised: codes would not be reproducible
            if (name.EndsWith("._codebook.inited", StringComparison.Ordinal) && t.to_type(ScalarType.Float32).item<float>() == 0f)
                throw new InvalidDataException($"{source}: {name} is 0 (codebook never initialised)");
        }

        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (torch.no_grad())
        {
            foreach (var spec in layout.Where(k => k.Role == KeyRole.Used))
            {
                var name = spec.Name;
                if (name.EndsWith(".weight_v", StringComparison.Ordinal))
                {
                    var stem = name[..^".weight_v".Length];
                    weights[stem + ".weight"] = FoldWeightNormDim0(raw[stem + ".weight_g"], raw[name]);
                }
                else if (name.EndsWith(".weight_g", StringComparison.Ordinal)) continue;
                else if (name.EndsWith("parametrizations.weight.original1", StringComparison.Ordinal))
                {
                    var stem = name[..^".parametrizations.weight.original1".Length];
                    weights[stem + ".weight"] = FoldWeightNormLastDim(raw[stem + ".parametrizations.weight.original0"], raw[name]);
                }
                else if (name.EndsWith("parametrizations.weight.original0", StringComparison.Ordinal)) continue;
                else weights[name] = raw[name].to_type(ScalarType.Float32).contiguous().clone().DetachFromDisposeScope();
            }
        }
        return new TokenizerWeights(sizes, weights, ComputeIdentity(sizes, weights));
    }

    /// <summary>
    /// A weight-normed conv may come already folded (transformers layout): then its (g, v) pair is expected as one
    /// plain <c>.weight</c> of v's shape instead.
    /// </summary>
    private static List<KeySpec> WithPrefoldedWeights(IReadOnlyList<KeySpec> layout, IReadOnlyDictionary<string, Tensor> raw)
    {
        static string? PairStem(string n) =>
            n.EndsWith(".weight_v", StringComparison.Ordinal) ? n[..^".weight_v".Length]
            : n.EndsWith(".weight_g", StringComparison.Ordinal) ? n[..^".weight_g".Length]
            : n.EndsWith(".parametrizations.weight.original1", StringComparison.Ordinal) ? n[..^".parametrizations.weight.original1".Length]
            : n.EndsWith(".parametrizations.weight.original0", StringComparison.Ordinal) ? n[..^".parametrizations.weight.original0".Length]
            : null;
        var result = new List<KeySpec>();
        foreach (var k in layout)
        {
            var stem = PairStem(k.Name);
            if (stem == null || raw.ContainsKey(k.Name) || !raw.ContainsKey(stem + ".weight")) { result.Add(k); continue; }
            if (k.Name.EndsWith(".weight_v", StringComparison.Ordinal) || k.Name.EndsWith("original1", StringComparison.Ordinal))
                result.Add(k with { Name = stem + ".weight" });
        }
        return result;
    }

    /// <summary>Old-style weight norm with dim 0: w = g · v / ‖v‖, the norm over every other dim (for ConvTranspose1d dim 0 is the input channel).</summary>
    public static Tensor FoldWeightNormDim0(Tensor g, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        var vf = v.to_type(ScalarType.Float32);
        var norm = vf.reshape(vf.shape[0], -1).norm(1, true, 2).reshape(g.shape);
        return (vf * (g.to_type(ScalarType.Float32) / norm)).contiguous().MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    /// <summary>New-style parametrised weight norm over the last (kernel tap) dim: each tap normalised over the other dims.</summary>
    public static Tensor FoldWeightNormLastDim(Tensor g, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        var vf = v.to_type(ScalarType.Float32);
        var k = vf.shape[^1];
        var norm = vf.reshape(-1, k).norm(0, true, 2).reshape(g.shape);
        return (vf * (g.to_type(ScalarType.Float32) / norm)).contiguous().MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    private static string ComputeIdentity(TokenizerSizes sizes, Dictionary<string, Tensor> weights)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(sizes.Describe()));
        foreach (var (name, t) in weights.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            sha.AppendData(t.bytes);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public void Dispose()
    {
        foreach (var t in _weights.Values) t.Dispose();
        _weights.Clear();
    }
}
