using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace HiggsCluster.Planning;

/// <summary>One corpus of a mixed dataset: a manifest, its sampling weight and the folder its audio must stay under.</summary>
public sealed record Corpus(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("weight")] double Weight,
    [property: JsonPropertyName("data_root")] string? DataRoot = null);

/// <summary>
/// Mixed datasets (<c>data.manifests</c>): how corpora are written as one config value, and how sample ids name their
/// corpus. Corpus c's entry i has id c × 2^40 + i, so ids of different corpora never meet and a loader, the coordinator
/// and the trainer all read the corpus off the id. A separate validation manifest keeps its ids at
/// <see cref="DataSplit.ValidationIdBase"/> + i inside corpus 0's block (manifests stay far below 10^9 entries).
/// </summary>
public static class DataMix
{
    public const int CorpusShift = 40;
    private const long IndexMask = (1L << CorpusShift) - 1;

    public static long IdOf(int corpus, long index) => ((long)corpus << CorpusShift) + index;

    public static int CorpusOf(long id) => (int)(id >> CorpusShift);

    /// <summary>True for ids of a separate validation manifest (whatever corpus layout the training side has).</summary>
    public static bool IsSeparateValidationId(long id) => (id & IndexMask) >= DataSplit.ValidationIdBase;

    /// <summary>
    /// The corpora as one config value: a JSON array of {"path", "weight", "data_root"} objects. JSON, because paths
    /// may hold any character a hand-made separator would need, and cluster nodes rebuild options from this text.
    /// </summary>
    public static string Format(IReadOnlyList<Corpus> corpora)
    {
        var a = new JsonArray();
        foreach (var c in corpora)
        {
            var o = new JsonObject { ["path"] = c.Path, ["weight"] = c.Weight };
            if (c.DataRoot is not null) o["data_root"] = c.DataRoot;
            a.Add(o);
        }
        return a.ToJsonString();
    }

    /// <summary>
    /// Reads <see cref="Format"/>'s text (weights may also be strings, as a YAML file gives them; a missing weight is 1).
    /// Only the shape is checked here; <c>FormatException</c> names the item and field that is wrong.
    /// </summary>
    public static IReadOnlyList<Corpus> Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return Array.Empty<Corpus>();
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw new FormatException($"must be a JSON list of {{path, weight, data_root}} objects: {e.Message}"); }
        if (root is not JsonArray items) throw new FormatException("must be a list of {path, weight, data_root} objects");
        var result = new List<Corpus>();
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i] is not JsonObject o) throw new FormatException($"[{i}] must be an object with path, weight and data_root");
            foreach (var (name, _) in o)
                if (name is not ("path" or "weight" or "data_root")) throw new FormatException($"[{i}].{name} is not one of path, weight, data_root");
            string? Text(string name) => o[name] is JsonValue v ? (v.TryGetValue<string>(out var s) ? s : v.ToJsonString()) : null;
            var weightText = Text("weight");
            double weight = 1;
            if (weightText is not null && !(double.TryParse(weightText, NumberStyles.Float, CultureInfo.InvariantCulture, out weight) && double.IsFinite(weight)))
                throw new FormatException($"[{i}].weight must be a number, got '{weightText}'");
            var root_ = Text("data_root");
            result.Add(new Corpus(Text("path") ?? "", weight, string.IsNullOrWhiteSpace(root_) ? null : root_));
        }
        return result;
    }

    /// <summary>The weights of a <see cref="Format"/>ted value, or null for a single-manifest run (empty text).</summary>
    public static IReadOnlyList<double>? Weights(string? text)
    {
        var corpora = Parse(text ?? "");
        return corpora.Count == 0 ? null : corpora.Select(c => c.Weight).ToArray();
    }
}
