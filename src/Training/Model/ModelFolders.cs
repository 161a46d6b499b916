using System.Text.Json;
using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Model;

/// <summary>
/// What a downloaded folder lacks, said before any work: a half-finished `huggingface-cli download` otherwise fails
/// deep in loading (a shard named by the index but absent, a tokenizer without its weights). Both Hugging Face layouts
/// are accepted: boson's (config.json, model.safetensors.index.json + model-0000N-of-0000M.safetensors; tokenizer
/// config.json + model.pth) and transformers ≥ 5.3's (config.json + model.safetensors; tokenizer model.safetensors).
/// </summary>
public static class ModelFolders
{
    public const string Download = "see docs/downloads.md for the download commands";

    /// <summary>Missing pieces of a base model folder (empty: complete).</summary>
    public static IReadOnlyList<string> MissingInBase(string dir)
    {
        var missing = new List<string>();
        if (!Directory.Exists(dir)) return new[] { $"the folder {dir}" };
        if (!File.Exists(Path.Combine(dir, "config.json"))) missing.Add("config.json");
        var index = Path.Combine(dir, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            try
            {
                if (JsonNode.Parse(File.ReadAllText(index))?["weight_map"] is not JsonObject map) missing.Add("the weight_map of model.safetensors.index.json");
                else
                    foreach (var shard in map.Select(kv => kv.Value?.GetValue<string>()).Where(s => s is not null).Distinct())
                        if (!File.Exists(Path.Combine(dir, shard!))) missing.Add($"{shard} (named by model.safetensors.index.json)");
            }
            catch (JsonException e) { missing.Add($"a readable model.safetensors.index.json ({e.Message})"); }
        }
        else if (!File.Exists(Path.Combine(dir, "model.safetensors"))) missing.Add("the weights (model.safetensors, or model.safetensors.index.json and its shards)");
        return missing;
    }

    /// <summary>Missing pieces of an audio tokenizer folder (empty: complete).</summary>
    public static IReadOnlyList<string> MissingInAudioTokenizer(string dir)
    {
        if (!Directory.Exists(dir)) return new[] { $"the folder {dir}" };
        var missing = new List<string>();
        if (!File.Exists(Path.Combine(dir, "config.json"))) missing.Add("config.json");
        if (!File.Exists(Path.Combine(dir, "model.safetensors")) && !File.Exists(Path.Combine(dir, "model.pth")))
            missing.Add("the weights (model.pth, or model.safetensors in the transformers layout)");
        return missing;
    }

    /// <summary>One line naming the folder, what it lacks and where the commands are; null when complete.</summary>
    public static string? Describe(string what, string dir, IReadOnlyList<string> missing) =>
        missing.Count == 0 ? null : $"{what} {dir} is incomplete: missing {string.Join(", ", missing)} ({Download})";
}
