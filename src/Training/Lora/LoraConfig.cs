using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace HiggsCluster.Training.Lora;

/// <summary>
/// PEFT LoraConfig (the fields that change behaviour). <see cref="TargetModules"/> is a list matched with PEFT's
/// suffix rule, or, when <see cref="TargetRegex"/> is set, a regex that must match the whole module path.
/// </summary>
public sealed record LoraConfig
{
    public static readonly IReadOnlyList<string> DefaultTargets = Planning.RunOptions.DefaultLoraTargets;

    public int R { get; init; } = 16;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.05;
    public IReadOnlyList<string> TargetModules { get; init; } = DefaultTargets;
    public string? TargetRegex { get; init; }
    public bool UseRsLora { get; init; }
    public string? BaseModelNameOrPath { get; init; }
    public string? Revision { get; init; }

    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>PEFT's matching: regex fullmatch for a string, else name == t or name ends with "." + t.</summary>
    public bool Matches(string modulePath)
    {
        if (TargetRegex is not null) return Regex.IsMatch(modulePath, "^(?:" + TargetRegex + ")$");
        foreach (var t in TargetModules)
            if (modulePath == t || modulePath.EndsWith("." + t, StringComparison.Ordinal)) return true;
        return false;
    }

    public static LoraConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"adapter config not found: {path}", path);
        var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        string Err(string m) => $"{path}: {m}";
        if (o["peft_type"]?.GetValue<string>() is { } pt && pt != "LORA") throw new InvalidDataException(Err($"peft_type '{pt}' is not LORA"));
        foreach (var unsupported in new[] { "use_dora", "fan_in_fan_out" })
            if (o[unsupported] is JsonValue v && v.TryGetValue<bool>(out var b) && b) throw new InvalidDataException(Err($"{unsupported}=true is not supported"));
        if (o["bias"]?.GetValue<string>() is { } bias && bias != "none") throw new InvalidDataException(Err($"bias '{bias}' is not supported (none)"));
        foreach (var k in new[] { "rank_pattern", "alpha_pattern" })
            if (o[k] is JsonObject po && po.Count > 0) throw new InvalidDataException(Err($"{k} is not supported"));
        foreach (var k in new[] { "layers_to_transform", "modules_to_save" })
            if (o[k] is JsonValue || (o[k] is JsonArray a && a.Count > 0)) throw new InvalidDataException(Err($"{k} is not supported"));
        IReadOnlyList<string> targets = DefaultTargets; string? regex = null;
        switch (o["target_modules"])
        {
            case JsonArray arr: targets = arr.Select(x => x!.GetValue<string>()).ToArray(); break;
            case JsonValue s when s.TryGetValue<string>(out var str): regex = str; targets = Array.Empty<string>(); break;
            case null: break;
            default: throw new InvalidDataException(Err("target_modules must be a list or a regex string"));
        }
        return new LoraConfig
        {
            R = o["r"]?.GetValue<int>() ?? 8,
            Alpha = o["lora_alpha"]?.GetValue<double>() ?? 8,
            Dropout = o["lora_dropout"]?.GetValue<double>() ?? 0,
            TargetModules = targets,
            TargetRegex = regex,
            UseRsLora = o["use_rslora"] is JsonValue rv && rv.TryGetValue<bool>(out var rs) && rs,
            BaseModelNameOrPath = o["base_model_name_or_path"] is JsonValue bv && bv.TryGetValue<string>(out var bn) ? bn : null,
            Revision = o["revision"] is JsonValue vv && vv.TryGetValue<string>(out var rev) ? rev : null,
        };
    }

    /// <summary>adapter_config.json as PEFT writes it; task_type null so PeftModel passes the Higgs kwargs through.</summary>
    public JsonObject ToPeftJson()
    {
        JsonNode? targets = TargetRegex is not null ? JsonValue.Create(TargetRegex)
            : new JsonArray(TargetModules.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray());
        return new JsonObject
        {
            ["peft_type"] = "LORA", ["task_type"] = null,
            ["base_model_name_or_path"] = BaseModelNameOrPath, ["revision"] = Revision,
            ["r"] = R, ["lora_alpha"] = Alpha, ["lora_dropout"] = Dropout,
            ["target_modules"] = targets,
            ["bias"] = "none", ["fan_in_fan_out"] = false, ["use_rslora"] = UseRsLora, ["use_dora"] = false,
            ["init_lora_weights"] = true, ["modules_to_save"] = null, ["layers_to_transform"] = null,
            ["layers_pattern"] = null, ["rank_pattern"] = new JsonObject(), ["alpha_pattern"] = new JsonObject(),
            ["inference_mode"] = true,
        };
    }

    public void Save(string path) =>
        File.WriteAllText(path, ToPeftJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
