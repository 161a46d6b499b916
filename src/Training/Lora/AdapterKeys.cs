using System.Text.RegularExpressions;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Lora;

/// <summary>
/// PEFT adapter key names in the two Hugging Face layouts, and the conversion of an adapter folder from one to the
/// other. A key is <c>base_model.model.</c> + module path (in the file's layout) + <c>.lora_A|lora_B.weight</c>; the
/// module path maps with <see cref="LayoutKeys"/>, so boson <c>layers.3.self_attn.q_proj</c> is transformers
/// <c>model.layers.3.self_attn.q_proj</c>.
/// </summary>
public static class AdapterKeys
{
    private static readonly string[] Suffixes = { ".lora_A.weight", ".lora_B.weight" };

    public static string Key(string modelPath, string matrix, WeightsLayout layout) =>
        LoraAdapter.KeyPrefix + LayoutKeys.FromModel(modelPath, layout) + "." + matrix + ".weight";

    /// <summary>The module path inside a key, or null when the key is not a PEFT LoRA key (PEFT's ".default" adapter name accepted).</summary>
    public static (string Path, string Suffix)? Split(string key)
    {
        var k = key.Replace(".lora_A.default.weight", ".lora_A.weight", StringComparison.Ordinal)
                   .Replace(".lora_B.default.weight", ".lora_B.weight", StringComparison.Ordinal);
        if (!k.StartsWith(LoraAdapter.KeyPrefix, StringComparison.Ordinal)) return null;
        foreach (var s in Suffixes)
            if (k.EndsWith(s, StringComparison.Ordinal) && k.Length > LoraAdapter.KeyPrefix.Length + s.Length)
                return (k[LoraAdapter.KeyPrefix.Length..^s.Length], s);
        return null;
    }

    /// <summary>A file key in <paramref name="layout"/> → the same key in boson names (unknown keys come back unchanged, to be reported).</summary>
    public static string ToModelKey(string key, WeightsLayout layout) => Rename(key, layout, WeightsLayout.Boson);

    /// <summary>A key in <paramref name="from"/> layout → the key in <paramref name="to"/> layout.</summary>
    public static string Rename(string key, WeightsLayout from, WeightsLayout to) =>
        Split(key) is var (path, suffix)
            ? LoraAdapter.KeyPrefix + LayoutKeys.FromModel(LayoutKeys.ToModel(path, from), to) + suffix
            : key;

    /// <summary>The layout an adapter file's keys are in (<paramref name="fallback"/> when it holds no LoRA key).</summary>
    public static WeightsLayout DetectLayout(IEnumerable<string> keys, WeightsLayout fallback, string source)
    {
        try { return LayoutKeys.Detect(keys.Select(Split).Where(s => s is not null).Select(s => s!.Value.Path), fallback); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
    }

    /// <summary>
    /// The config to write next to keys whose module paths are <paramref name="paths"/> in a different layout: a regex,
    /// or a list entry naming a dotted path, was written for the old names, so it becomes the exact alternation of the
    /// adapted paths (PEFT fullmatches a string target_modules). Plain module names match in both layouts and stay.
    /// </summary>
    public static LoraConfig RetargetRegex(LoraConfig config, IEnumerable<string> paths)
    {
        if (config.TargetRegex is null && !config.TargetModules.Any(t => t.Contains('.'))) return config;
        var exact = string.Join("|", paths.OrderBy(p => p, StringComparer.Ordinal).Select(Regex.Escape));
        return config with { TargetRegex = exact, TargetModules = Array.Empty<string>() };
    }

    /// <summary>
    /// Writes <paramref name="srcDir"/>'s adapter to <paramref name="dstDir"/> with keys in <paramref name="layout"/>;
    /// tensors are copied unchanged (dtype and values). Returns the layout it was in and the number of tensors.
    /// </summary>
    public static (WeightsLayout From, int Tensors) Convert(string srcDir, string dstDir, WeightsLayout layout)
    {
        var weights = Path.Combine(srcDir, LoraAdapter.WeightsFile);
        var config = LoraConfig.Load(Path.Combine(srcDir, LoraAdapter.ConfigFile));
        if (!File.Exists(weights)) throw new FileNotFoundException($"adapter weights not found: {weights}", weights);
        if (Path.GetFullPath(srcDir) == Path.GetFullPath(dstDir)) throw new ArgumentException("the output folder must differ from the adapter folder");
        using var scope = NewDisposeScope();
        var all = SafetensorsFile.ReadAll(weights);
        var unknown = all.Keys.Where(k => Split(k) is null).ToList();
        if (unknown.Count > 0) throw new InvalidDataException($"{weights}: not LoRA keys: {string.Join(", ", unknown.Take(5))}");
        var from = DetectLayout(all.Keys, WeightsLayout.Boson, weights);
        var renamed = all.Select(kv => new KeyValuePair<string, Tensor>(Rename(kv.Key, from, layout), kv.Value)).ToList();
        var paths = renamed.Select(kv => Split(kv.Key)!.Value.Path).Distinct();
        Directory.CreateDirectory(dstDir);
        var outWeights = Path.Combine(dstDir, LoraAdapter.WeightsFile);
        if (File.Exists(outWeights)) File.Delete(outWeights);
        SafetensorsWriter.Write(outWeights, renamed.OrderBy(kv => kv.Key, StringComparer.Ordinal), new Dictionary<string, string> { ["format"] = "pt" });
        (from == layout ? config : RetargetRegex(config, paths)).Save(Path.Combine(dstDir, LoraAdapter.ConfigFile));
        return (from, renamed.Count);
    }
}
