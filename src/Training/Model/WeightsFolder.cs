using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// What a checkpoint folder holds besides its weights, carried over when a new checkpoint is written from it (a
/// merge): the base's own config.json, edited only where the new weights differ, and the tokenizer and generation
/// files that serving engines read from the model folder.
/// </summary>
public static class WeightsFolder
{
    private static readonly string[] WeightExtensions = { ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf" };

    /// <summary>Files a weight writer owns: weights, weight indexes and config.json.</summary>
    public static bool IsWeightOrConfig(string fileName) =>
        fileName == "config.json"
        || fileName.EndsWith(".index.json", StringComparison.Ordinal)
        || WeightExtensions.Any(e => fileName.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The base's config.json with every field kept; when the weights are written in another dtype than stored, the
    /// dtype fields it has (<c>torch_dtype</c>, transformers 5's <c>dtype</c>, also inside <c>text_config</c>) say so,
    /// and a config with none gets <c>torch_dtype</c>.
    /// </summary>
    public static JsonObject ConfigFor(string baseDir, ScalarType written, ScalarType stored)
    {
        var path = Path.Combine(baseDir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        if (written == stored) return json;
        var name = HfName(written);
        bool any = false;
        foreach (var o in new[] { json, json["text_config"] as JsonObject })
            foreach (var k in new[] { "torch_dtype", "dtype" })
                if (o is not null && o.ContainsKey(k)) { o[k] = name; any = true; }
        if (!any) json["torch_dtype"] = name;
        return json;
    }

    /// <summary>Copies every top-level file of <paramref name="baseDir"/> that is not weights or config.json; returns their names.</summary>
    public static IReadOnlyList<string> CopySideFiles(string baseDir, string outDir)
    {
        var copied = new List<string>();
        foreach (var f in Directory.EnumerateFiles(baseDir).OrderBy(f => f, StringComparer.Ordinal))
        {
            var name = Path.GetFileName(f);
            if (IsWeightOrConfig(name)) continue;
            File.Copy(f, Path.Combine(outDir, name), overwrite: true);
            copied.Add(name);
        }
        return copied;
    }

    public static string HfName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        _ => throw new ArgumentException($"no Hugging Face dtype name for {t}"),
    };
}
