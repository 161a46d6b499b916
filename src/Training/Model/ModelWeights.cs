using System.Text.Json;
using System.Text.Json.Nodes;
using HiggsCluster.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// Loads and writes Higgs checkpoints: <c>config.json</c> plus <c>model.safetensors</c> or a sharded
/// <c>model.safetensors.index.json</c>. Loading is strict: missing or unexpected keys and shape mismatches are errors.
/// </summary>
public static class ModelWeights
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Keys some exporters write that carry no weights of ours (recomputed buffers, unused attributes).</summary>
    private static bool Ignorable(string key) =>
        key.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) ||
        key.EndsWith("rotary_emb.original_inv_freq", StringComparison.Ordinal) ||
        key == "audio_codebook_weights";

    /// <summary>Loads the base model in the policy's base dtype (LoRA dtype is the adapter's business).</summary>
    public static HiggsAudioModel LoadModel(string dir, PrecisionPolicy policy, Device device) => LoadModel(dir, policy.BaseDType, device);

    public static HiggsAudioModel LoadModel(string dir, ScalarType dtype, Device? device = null)
    {
        var cfg = HiggsAudioConfig.Load(Path.Combine(dir, "config.json"));
        var model = new HiggsAudioModel(cfg, dtype, device ?? CPU);
        LoadWeights(model, dir);
        return model;
    }

    /// <summary>The floating dtype the checkpoint's weights are stored in (the first floating tensor of the first file).</summary>
    public static ScalarType StoredDType(string dir)
    {
        foreach (var f in ShardFiles(dir))
        {
            using var st = new SafetensorsFile(f);
            foreach (var e in st.Entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal))
                if (e.DType is "F32" or "BF16" or "F16" or "F64") return SafetensorsFile.ToScalarType(e.DType);
        }
        throw new InvalidDataException($"{dir}: the checkpoint holds no floating-point weights");
    }

    /// <summary>Maps a file key to the model's (boson) key for the given layout.</summary>
    public static string ToModelKey(string fileKey, WeightsLayout layout) => LayoutKeys.ToModel(fileKey, layout);

    public static void LoadWeights(HiggsAudioModel model, string dir) => LoadWeightsFrom(model, ShardFiles(dir), dir);

    /// <summary>Strict load from explicit safetensors files (their union must be exactly the model's base weights).</summary>
    public static void LoadWeightsFrom(HiggsAudioModel model, IReadOnlyList<string> files, string dir)
    {
        var opened = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var source = new Dictionary<string, (SafetensorsFile File, string Key)>(StringComparer.Ordinal);
            foreach (var f in files)
            {
                var st = new SafetensorsFile(f);
                opened[f] = st;
                foreach (var key in st.Names)
                {
                    if (Ignorable(key)) continue;
                    var mk = ToModelKey(key, model.Config.Layout);
                    if (!source.TryAdd(mk, (st, key)))
                        throw new InvalidDataException($"{dir}: weight '{key}' appears twice (in {Path.GetFileName(source[mk].File.Path)} and {Path.GetFileName(f)})");
                }
            }
            var targets = model.BaseParameters().ToDictionary(p => p.Name, p => p.Param, StringComparer.Ordinal);
            var missing = targets.Keys.Where(k => !source.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            var unexpected = source.Keys.Where(k => !targets.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw new InvalidDataException($"{dir}: checkpoint does not match the model built from config.json"
                    + (missing.Count > 0 ? $"; missing keys ({missing.Count}): {Preview(missing)}" : "")
                    + (unexpected.Count > 0 ? $"; unexpected keys ({unexpected.Count}): {Preview(unexpected)}" : ""));
            using var _ = no_grad();
            // File by file in offset order, so a cold multi-GB load reads each shard sequentially.
            var order = targets.Keys.OrderBy(n => source[n].File.Path, StringComparer.Ordinal)
                .ThenBy(n => source[n].File.Entry(source[n].Key).Begin).ToList();
            foreach (var name in order)
            {
                var p = targets[name];
                var (file, key) = source[name];
                var e = file.Entry(key);
                if (!e.Shape.SequenceEqual(p.shape))
                    throw new InvalidDataException($"{file.Path}: '{key}' has shape [{string.Join(",", e.Shape)}], the model expects [{string.Join(",", p.shape)}]");
                if (p.device_type == DeviceType.CPU && SafetensorsFile.ToScalarType(e.DType) == p.dtype && p.is_contiguous())
                    file.CopyInto(e, p);
                else
                {
                    using var t = file.Load(key, p.dtype);
                    p.copy_(t);
                }
            }
        }
        finally
        {
            foreach (var f in opened.Values) f.Dispose();
        }
    }

    private static string Preview(List<string> keys) =>
        string.Join(", ", keys.Take(20)) + (keys.Count > 20 ? $", ... ({keys.Count - 20} more)" : "");

    private static List<string> ShardFiles(string dir)
    {
        var index = Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            var root = JsonNode.Parse(File.ReadAllText(index)) as JsonObject
                       ?? throw new InvalidDataException($"{index}: not a JSON object");
            if (root["weight_map"] is not JsonObject map) throw new InvalidDataException($"{index}: no weight_map");
            return map.Select(kv => kv.Value!.GetValue<string>()).Distinct().Select(f => Path.Combine(dir, f)).ToList();
        }
        var single = Path.Combine(dir, SingleFile);
        if (File.Exists(single)) return new List<string> { single };
        throw new FileNotFoundException($"{dir}: neither {IndexFile} nor {SingleFile} found");
    }

    /// <summary>Shard size Hugging Face's save_pretrained uses by default.</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>Writes config.json and the model's current weights (in its <see cref="HiggsAudioConfig.Layout"/>, in <paramref name="dtype"/> or the model's dtype); the caller keeps ownership of <paramref name="replaceWeights"/>.</summary>
    public static void Save(HiggsAudioModel model, string dir, IReadOnlyDictionary<string, Tensor>? replaceWeights = null,
        ScalarType? dtype = null, long maxShardBytes = DefaultMaxShardBytes) =>
        Save(model, dir, replaceWeights is null ? null : name => replaceWeights.TryGetValue(name, out var r) ? r.detach() : null, dtype, maxShardBytes);

    /// <summary>
    /// Writes config.json plus model.safetensors, or HF-style shards with model.safetensors.index.json when the weights
    /// exceed <paramref name="maxShardBytes"/>. Keys follow the layout the model was loaded from, so a checkpoint written
    /// back has the base's key names. <paramref name="replace"/> may supply a freshly computed weight for a (boson) name
    /// (for example a merged LoRA weight); it is computed when written and disposed right after, so exporting never holds
    /// a second copy of the model. <paramref name="configJson"/> replaces the generated config.json (a merge keeps the
    /// base's file with every field it has).
    /// </summary>
    public static void Save(HiggsAudioModel model, string dir, Func<string, Tensor?>? replace, ScalarType? dtype = null,
        long maxShardBytes = DefaultMaxShardBytes, JsonObject? configJson = null)
    {
        var target = dtype ?? model.DType;
        var layout = model.Config.Layout;
        var parameters = model.BaseParameters().ToDictionary(p => LayoutKeys.FromModel(p.Name, layout), p => (Model: p.Name, p.Param), StringComparer.Ordinal);
        var specs = parameters.Select(kv => new SafetensorsSpec(kv.Key, target, kv.Value.Param.shape)).ToList();
        WriteSharded(dir, configJson ?? model.Config.ToLayoutJson(), specs, spec =>
        {
            using var _ = no_grad();
            var (name, param) = parameters[spec.Name];
            // Always a fresh handle (detach) so that disposing it after the write never frees a parameter.
            var source = replace?.Invoke(name) ?? param.detach();
            var t = source.cpu().to_type(target);
            if (!ReferenceEquals(t, source)) source.Dispose();
            return t;
        }, maxShardBytes);
    }

    /// <summary>As below, with the config written in the config's own layout.</summary>
    public static void WriteSharded(string dir, HiggsAudioConfig config, IReadOnlyList<SafetensorsSpec> specs,
        Func<SafetensorsSpec, Tensor> produce, long maxShardBytes = DefaultMaxShardBytes) =>
        WriteSharded(dir, config.ToLayoutJson(), specs, produce, maxShardBytes);

    /// <summary>
    /// Streams a checkpoint to <paramref name="dir"/> (<paramref name="configJson"/> as config.json + one file or HF-style
    /// shards with an index; spec names are written as given): each tensor is asked of <paramref name="produce"/> only
    /// when its bytes are written and disposed after. Shards are filled in name order up to <paramref name="maxShardBytes"/>
    /// (a larger tensor gets a shard of its own). Earlier weight files in the folder are removed so the loader cannot pick
    /// up a stale index or shard.
    /// </summary>
    public static void WriteSharded(string dir, JsonObject configJson, IReadOnlyList<SafetensorsSpec> specs,
        Func<SafetensorsSpec, Tensor> produce, long maxShardBytes = DefaultMaxShardBytes)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), "shard size must be positive");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), configJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var old in Directory.EnumerateFiles(dir, "model*.safetensors*"))
            if (Path.GetFileName(old) == SingleFile || Path.GetFileName(old) == IndexFile || IsShardName(Path.GetFileName(old))) File.Delete(old);

        var ordered = specs.OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
        var shards = new List<List<SafetensorsSpec>>();
        long current = 0;
        foreach (var s in ordered)
        {
            if (shards.Count == 0 || (current > 0 && current + s.ByteLength > maxShardBytes)) { shards.Add(new()); current = 0; }
            shards[^1].Add(s);
            current += s.ByteLength;
        }
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count <= 1)
        {
            SafetensorsWriter.WriteStreaming(Path.Combine(dir, SingleFile), ordered, produce, meta, disposeProduced: true);
            return;
        }
        var map = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsWriter.WriteStreaming(Path.Combine(dir, name), shards[i], produce, meta, disposeProduced: true);
            foreach (var s in shards[i]) map[s.Name] = name;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = ordered.Sum(s => s.ByteLength) },
            ["weight_map"] = map,
        };
        File.WriteAllText(Path.Combine(dir, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static bool IsShardName(string file) =>
        System.Text.RegularExpressions.Regex.IsMatch(file, @"^model-\d{5}-of-\d{5}\.safetensors$");

    /// <summary>
    /// Fills every base weight with the goldens' tiny-model recipe (linears/embeddings N(0, std), norms 1 + 0.1·N(0,1),
    /// biases 0.02·N(0,1), pad row of embed_tokens zero). For tests and demos only.
    /// </summary>
    public static void RandomInit(HiggsAudioModel model, long seed, double std = 0.05)
    {
        using var _ = no_grad();
        var g = new Generator((ulong)seed);
        foreach (var (name, p) in model.BaseParameters())
        {
            Tensor v;
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.Contains("layernorm", StringComparison.Ordinal) || name.Contains("layer_norm", StringComparison.Ordinal))
                v = name.EndsWith(".bias", StringComparison.Ordinal) ? randn(p.shape, generator: g).Times(0.02) : randn(p.shape, generator: g).Times(0.1).Plus(1);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) v = randn(p.shape, generator: g).Times(0.02);
            else v = randn(p.shape, generator: g).Times(std);
            p.copy_(v.to_type(p.dtype));
        }
        var emb = model.BaseParameters().First(p => p.Name == "embed_tokens.weight").Param;
        if (model.Config.PadTokenId >= 0 && model.Config.PadTokenId < emb.shape[0]) emb[model.Config.PadTokenId].zero_();
    }
}
