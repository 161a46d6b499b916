using System.Text.Json;
using System.Text.Json.Nodes;
using HiggsCluster.Training.Goldens;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

/// <summary>
/// Golden area "prepare": each run's <c>parameters.entry</c> goes through the manifest entry parser and
/// <see cref="ChatMLPreparer"/>; the token tensors are compared by the harness, every other recorded field here.
/// </summary>
public sealed class PrepareGoldenArea(GoldenEnvironment env) : IGoldenArea
{
    private TextTokenizer? _tokenizer;

    public string Name => "prepare";

    private TextTokenizer Tokenizer()
    {
        if (_tokenizer != null) return _tokenizer;
        var path = env.TextTokenizerPath
                   ?? throw new InvalidOperationException(
                       $"area 'prepare' needs the Llama-3/Higgs vocabulary: run scripts/fetch-test-assets.sh (or set {GoldenEnvironment.TokenizerVariable})");
        return _tokenizer = TextTokenizer.Load(path);
    }

    public GoldenOutputs Compute(GoldenRun run)
    {
        var tok = Tokenizer();
        var entryNode = run.RunParameters["entry"] ?? throw new InvalidDataException($"{run.Label}: run has no parameters.entry");
        using var doc = JsonDocument.Parse(entryNode.ToJsonString());
        var sample = ChatMLEntryParser.ParseOrThrow(doc.RootElement);
        var prepared = ChatMLPreparer.Prepare(sample, tok, recordTokenizerCalls: true);

        var outputs = new GoldenOutputs();
        outputs.Tensors["input_tokens"] = tensor(prepared.InputTokens.Select(x => (long)x).ToArray(), ScalarType.Int64);
        outputs.Tensors["label_tokens"] = tensor(prepared.LabelTokens.Select(x => (long)x).ToArray(), ScalarType.Int64);

        var actual = new Dictionary<string, JsonNode?>
        {
            ["audio_contents"] = new JsonArray(prepared.AudioContents.Select(a => (JsonNode)a.ToJson()).ToArray()),
            ["audio_label_contents"] = new JsonArray(prepared.AudioLabelContents.Select(a => (JsonNode)a.ToJson()).ToArray()),
            ["speaker"] = prepared.Speaker?.DeepClone(),
            ["audio_placements"] = new JsonArray(prepared.AudioPlacements.Select(p => (JsonNode)new JsonObject
            {
                ["index"] = p.Index,
                ["token"] = p.IsAudioOut ? HiggsSpecialTokens.AudioOutName : HiggsSpecialTokens.AudioName,
                ["position"] = p.Position,
                ["label"] = p.Label,
            }).ToArray()),
            ["tokenizer_calls"] = new JsonArray(prepared.TokenizerCalls!.Select(c => (JsonNode)new JsonObject
            {
                ["text"] = c.Text,
                ["ids"] = new JsonArray(c.Ids.Select(i => (JsonNode)i).ToArray()),
            }).ToArray()),
            ["num_tokens"] = prepared.InputTokens.Length,
            ["input_text"] = tok.Decode(prepared.InputTokens),
        };
        foreach (var (field, value) in actual)
        {
            if (!run.Run.TryGetPropertyValue(field, out var expected)) continue; // a field this run does not record
            var diff = JsonValues.FirstDifference(value, expected, field);
            if (diff != null) outputs.Failures.Add(diff);
        }
        return outputs;
    }
}

/// <summary>Structural JSON equality; numbers compare by value (Python writes 3.0 where a port may write 3).</summary>
public static class JsonValues
{
    /// <summary>Null when equal, else where and how they differ.</summary>
    public static string? FirstDifference(JsonNode? actual, JsonNode? expected, string path)
    {
        if (actual is null || expected is null)
            return actual is null && expected is null ? null : $"{path}: {Show(actual)} != expected {Show(expected)}";
        switch (expected)
        {
            case JsonObject eo:
                if (actual is not JsonObject ao) return $"{path}: {Show(actual)} != expected {Show(expected)}";
                foreach (var (k, ev) in eo)
                {
                    if (!ao.TryGetPropertyValue(k, out var av)) return $"{path}.{k}: missing (expected {Show(ev)})";
                    if (FirstDifference(av, ev, $"{path}.{k}") is { } d) return d;
                }
                foreach (var (k, _) in ao)
                    if (!eo.ContainsKey(k)) return $"{path}.{k}: not expected";
                return null;
            case JsonArray ea:
                if (actual is not JsonArray aa) return $"{path}: {Show(actual)} != expected {Show(expected)}";
                if (aa.Count != ea.Count) return $"{path}: {aa.Count} items != expected {ea.Count}";
                for (int i = 0; i < ea.Count; i++)
                    if (FirstDifference(aa[i], ea[i], $"{path}[{i}]") is { } d) return d;
                return null;
            default:
                var ek = expected.GetValueKind();
                var ak = actual.GetValueKind();
                if (ek == JsonValueKind.Number && ak == JsonValueKind.Number)
                    return Number(expected) == Number(actual) ? null : $"{path}: {Show(actual)} != expected {Show(expected)}";
                if (ek != ak) return $"{path}: {Show(actual)} != expected {Show(expected)}";
                if (ek == JsonValueKind.String)
                    return string.Equals(actual.GetValue<string>(), expected.GetValue<string>(), StringComparison.Ordinal) ? null : $"{path}: {Show(actual)} != expected {Show(expected)}";
                return null; // true/false/null of the same kind
        }
    }

    private static double Number(JsonNode n) => double.Parse(n.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);

    private static string Show(JsonNode? n)
    {
        var s = n?.ToJsonString() ?? "null";
        return s.Length > 120 ? s[..120] + "…" : s;
    }
}
