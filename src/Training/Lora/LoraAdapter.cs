using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Lora;

/// <summary>
/// LoRA on a <see cref="HiggsAudioModel"/> with PEFT semantics and PEFT's file format
/// (<c>adapter_model.safetensors</c> with <c>base_model.model.&lt;path&gt;.lora_{A,B}.weight</c> + <c>adapter_config.json</c>).
/// Paths are written in <see cref="Layout"/>, by default the base checkpoint's, because PEFT looks the keys up under the
/// module names of the model it wraps: a boson path on a transformers model is "missing" and its B stays zero.
/// </summary>
public sealed class LoraAdapter
{
    public const string KeyPrefix = "base_model.model.";
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";

    private readonly Dictionary<string, Projection> _targets;

    public LoraConfig Config { get; }
    public HiggsAudioModel Model { get; }
    /// <summary>The Hugging Face layout the adapter's keys and a regex target_modules are written in.</summary>
    public WeightsLayout Layout { get; }
    /// <summary>Adapted module paths (the model's boson names), sorted.</summary>
    public IReadOnlyList<string> ModulePaths { get; }

    private LoraAdapter(HiggsAudioModel model, LoraConfig config, Dictionary<string, Projection> targets, WeightsLayout layout)
    {
        Model = model; Config = config; _targets = targets; Layout = layout;
        ModulePaths = targets.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Freezes the base model and attaches a LoRA branch (in <paramref name="loraDtype"/>, fp32 by default) to every
    /// Linear whose path in <paramref name="layout"/> (default: the base's) matches the config, as PEFT matches on the
    /// model it wraps. A and B follow PEFT's default init unless weights are loaded afterwards.
    /// </summary>
    public static LoraAdapter Attach(HiggsAudioModel model, LoraConfig config, ScalarType loraDtype = ScalarType.Float32,
        Generator? init = null, WeightsLayout? layout = null)
    {
        if (model.LoraParameters().Any()) throw new InvalidOperationException("the model already carries LoRA branches");
        var fileLayout = layout ?? model.Config.Layout;
        foreach (var p in model.parameters()) p.requires_grad = false;
        var targets = new Dictionary<string, Projection>(StringComparer.Ordinal);
        foreach (var (path, proj) in model.Projections())
        {
            if (!config.Matches(LayoutKeys.FromModel(path, fileLayout))) continue;
            var branch = new LoraBranch(proj.InFeatures, proj.OutFeatures, config.R, config.Scaling, config.Dropout, loraDtype, model.Device);
            branch.ResetParameters(init);
            proj.AttachLora(branch);
            targets[path] = proj;
        }
        if (targets.Count == 0)
            throw new InvalidDataException($"LoRA target_modules [{string.Join(", ", config.TargetModules)}]{(config.TargetRegex is null ? "" : $" / regex '{config.TargetRegex}'")} match no Linear of the model");
        return new LoraAdapter(model, config, targets, fileLayout);
    }

    /// <summary>Reads adapter_config.json, attaches and loads adapter_model.safetensors (keys must match exactly).</summary>
    public static LoraAdapter Load(HiggsAudioModel model, string dir, ScalarType loraDtype = ScalarType.Float32) =>
        Load(model, Path.Combine(dir, ConfigFile), Path.Combine(dir, WeightsFile), loraDtype);

    /// <summary>
    /// An adapter in either layout loads on a base of either layout: the file's layout is read off its keys, a regex
    /// target is matched in that layout, and the adapter keeps it (<see cref="Save"/> writes it back the same way).
    /// </summary>
    public static LoraAdapter Load(HiggsAudioModel model, string configPath, string weightsPath, ScalarType loraDtype = ScalarType.Float32)
    {
        var cfg = LoraConfig.Load(configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"adapter weights not found: {weightsPath}", weightsPath);
        WeightsLayout layout;
        using (var f = new SafetensorsFile(weightsPath))
            layout = AdapterKeys.DetectLayout(f.Names, model.Config.Layout, weightsPath);
        var adapter = Attach(model, cfg, loraDtype, layout: layout);
        adapter.LoadWeights(weightsPath);
        return adapter;
    }

    /// <summary>(file key in <paramref name="layout"/> (default <see cref="Layout"/>), parameter) for every A and B, in sorted module order.</summary>
    public IEnumerable<(string Key, Parameter Param)> NamedParameters(WeightsLayout? layout = null)
    {
        foreach (var path in ModulePaths)
        {
            var b = _targets[path].Lora!;
            yield return (AdapterKeys.Key(path, "lora_A", layout ?? Layout), b.A);
            yield return (AdapterKeys.Key(path, "lora_B", layout ?? Layout), b.B);
        }
    }

    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(p => p.Param);

    /// <summary>Loads A and B from a PEFT file whose keys are in either layout (see <see cref="AdapterKeys.ToModelKey"/>).</summary>
    public void LoadWeights(string path)
    {
        using var f = new SafetensorsFile(path);
        var expected = NamedParameters(WeightsLayout.Boson).ToDictionary(p => p.Key, p => p.Param, StringComparer.Ordinal);
        var fileLayout = AdapterKeys.DetectLayout(f.Names, Layout, path);
        var inFile = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var k in f.Names)
        {
            var mk = AdapterKeys.ToModelKey(k, fileLayout);
            if (!inFile.TryAdd(mk, k)) throw new InvalidDataException($"{path}: '{k}' and '{inFile[mk]}' name the same LoRA weight");
        }
        var missing = expected.Keys.Where(k => !inFile.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var extra = inFile.Keys.Where(k => !expected.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"{path}: adapter keys ({LayoutKeys.Name(fileLayout)} layout, shown as boson names) do not match the LoRA targets of the config"
                + (missing.Count > 0 ? $"; missing: {string.Join(", ", missing.Take(20))}" : "")
                + (extra.Count > 0 ? $"; unexpected: {string.Join(", ", extra.Take(20))}" : ""));
        using var _ = no_grad();
        foreach (var (key, p) in expected)
        {
            var e = f.Entry(inFile[key]);
            if (!e.Shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{path}: '{e.Name}' has shape [{string.Join(",", e.Shape)}], expected [{string.Join(",", p.shape)}] (r={Config.R})");
            using var t = f.Load(e.Name, p.dtype);
            p.copy_(t);
        }
    }

    /// <summary>
    /// Writes adapter_model.safetensors (fp32, metadata format=pt) and adapter_config.json, keys in <paramref name="layout"/>
    /// (default <see cref="Layout"/>). A regex target written for the other layout is replaced by the exact adapted paths.
    /// </summary>
    public void Save(string dir, WeightsLayout? layout = null)
    {
        var target = layout ?? Layout;
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, WeightsFile);
        if (File.Exists(path)) File.Delete(path);
        var tensors = NamedParameters(target).Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Param.detach().cpu().to_type(ScalarType.Float32).contiguous())).ToList();
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var cfg = target == Layout ? Config : AdapterKeys.RetargetRegex(Config, ModulePaths.Select(p => LayoutKeys.FromModel(p, target)));
        cfg.Save(Path.Combine(dir, ConfigFile));
    }

    /// <summary>
    /// Writes a full checkpoint (config.json + weights, sharded when large) with W + scaling·B·A folded into each target,
    /// in <paramref name="dtype"/> (default: the base model's dtype) and the base's key layout. Each merged weight is
    /// computed when it is written. <paramref name="configJson"/>: config.json to write (default: generated from the model).
    /// </summary>
    public void MergeAndExport(string dir, ScalarType? dtype = null, long maxShardBytes = ModelWeights.DefaultMaxShardBytes,
        System.Text.Json.Nodes.JsonObject? configJson = null)
    {
        var byWeight = ModulePaths.ToDictionary(p => p + ".weight", p => _targets[p], StringComparer.Ordinal);
        ModelWeights.Save(Model, dir, name => byWeight.TryGetValue(name, out var proj) ? proj.MergedWeight(dtype) : null, dtype, maxShardBytes, configJson);
    }
}
