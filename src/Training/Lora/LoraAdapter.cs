using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Lora;

/// <summary>
/// LoRA on a <see cref="HiggsAudioModel"/> with PEFT semantics and PEFT's file format
/// (<c>adapter_model.safetensors</c> with <c>base_model.model.&lt;path&gt;.lora_{A,B}.weight</c> + <c>adapter_config.json</c>).
/// </summary>
public sealed class LoraAdapter
{
    public const string KeyPrefix = "base_model.model.";
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";

    private readonly Dictionary<string, Projection> _targets;

    public LoraConfig Config { get; }
    public HiggsAudioModel Model { get; }
    /// <summary>Adapted module paths, sorted.</summary>
    public IReadOnlyList<string> ModulePaths { get; }

    private LoraAdapter(HiggsAudioModel model, LoraConfig config, Dictionary<string, Projection> targets)
    {
        Model = model; Config = config; _targets = targets;
        ModulePaths = targets.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Freezes the base model and attaches a LoRA branch (in <paramref name="loraDtype"/>, fp32 by default) to every
    /// Linear whose path matches the config. A and B follow PEFT's default init unless weights are loaded afterwards.
    /// </summary>
    public static LoraAdapter Attach(HiggsAudioModel model, LoraConfig config, ScalarType loraDtype = ScalarType.Float32, Generator? init = null)
    {
        if (model.LoraParameters().Any()) throw new InvalidOperationException("the model already carries LoRA branches");
        foreach (var p in model.parameters()) p.requires_grad = false;
        var targets = new Dictionary<string, Projection>(StringComparer.Ordinal);
        foreach (var (path, proj) in model.Projections())
        {
            if (!config.Matches(path)) continue;
            var branch = new LoraBranch(proj.InFeatures, proj.OutFeatures, config.R, config.Scaling, config.Dropout, loraDtype, model.Device);
            branch.ResetParameters(init);
            proj.AttachLora(branch);
            targets[path] = proj;
        }
        if (targets.Count == 0)
            throw new InvalidDataException($"LoRA target_modules [{string.Join(", ", config.TargetModules)}]{(config.TargetRegex is null ? "" : $" / regex '{config.TargetRegex}'")} match no Linear of the model");
        return new LoraAdapter(model, config, targets);
    }

    /// <summary>Reads adapter_config.json, attaches and loads adapter_model.safetensors (keys must match exactly).</summary>
    public static LoraAdapter Load(HiggsAudioModel model, string dir, ScalarType loraDtype = ScalarType.Float32) =>
        Load(model, Path.Combine(dir, ConfigFile), Path.Combine(dir, WeightsFile), loraDtype);

    public static LoraAdapter Load(HiggsAudioModel model, string configPath, string weightsPath, ScalarType loraDtype = ScalarType.Float32)
    {
        var cfg = LoraConfig.Load(configPath);
        var adapter = Attach(model, cfg, loraDtype);
        adapter.LoadWeights(weightsPath);
        return adapter;
    }

    /// <summary>(file key, parameter) for every A and B, in sorted module order.</summary>
    public IEnumerable<(string Key, Parameter Param)> NamedParameters()
    {
        foreach (var path in ModulePaths)
        {
            var b = _targets[path].Lora!;
            yield return (KeyPrefix + path + ".lora_A.weight", b.A);
            yield return (KeyPrefix + path + ".lora_B.weight", b.B);
        }
    }

    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(p => p.Param);

    public void LoadWeights(string path)
    {
        using var f = new SafetensorsFile(path);
        var expected = NamedParameters().ToDictionary(p => p.Key, p => p.Param, StringComparer.Ordinal);
        // PEFT inserts the adapter name when it loads; accept files written with it as well.
        string Normalise(string k) => k.Replace(".lora_A.default.weight", ".lora_A.weight", StringComparison.Ordinal)
                                       .Replace(".lora_B.default.weight", ".lora_B.weight", StringComparison.Ordinal);
        var inFile = f.Names.ToDictionary(Normalise, k => k, StringComparer.Ordinal);
        var missing = expected.Keys.Where(k => !inFile.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var extra = inFile.Keys.Where(k => !expected.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"{path}: adapter keys do not match the LoRA targets of the config"
                + (missing.Count > 0 ? $"; missing: {string.Join(", ", missing.Take(20))}" : "")
                + (extra.Count > 0 ? $"; unexpected: {string.Join(", ", extra.Take(20))}" : ""));
        using var _ = no_grad();
        foreach (var (key, p) in expected)
        {
            var e = f.Entry(inFile[key]);
            if (!e.Shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{path}: '{key}' has shape [{string.Join(",", e.Shape)}], expected [{string.Join(",", p.shape)}] (r={Config.R})");
            using var t = f.Load(e.Name, p.dtype);
            p.copy_(t);
        }
    }

    /// <summary>Writes adapter_model.safetensors (fp32, metadata format=pt) and adapter_config.json.</summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, WeightsFile);
        if (File.Exists(path)) File.Delete(path);
        var tensors = NamedParameters().Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Param.detach().cpu().to_type(ScalarType.Float32).contiguous())).ToList();
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        Config.Save(Path.Combine(dir, ConfigFile));
    }

    /// <summary>
    /// Writes a full checkpoint (config.json + weights, sharded when large) with W + scaling·B·A folded into each target,
    /// in <paramref name="dtype"/> (default: the base model's dtype). Each merged weight is computed when it is written.
    /// </summary>
    public void MergeAndExport(string dir, ScalarType? dtype = null, long maxShardBytes = Checkpoint.DefaultMaxShardBytes)
    {
        var byWeight = ModulePaths.ToDictionary(p => p + ".weight", p => _targets[p], StringComparer.Ordinal);
        Checkpoint.Save(Model, dir, name => byWeight.TryGetValue(name, out var proj) ? proj.MergedWeight(dtype) : null, dtype, maxShardBytes);
    }
}
