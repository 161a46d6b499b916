using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;

namespace HiggsCluster.Training.Goldens;

/// <summary>
/// Whether the port refused a golden run for the reason upstream did. A run with <c>expect_error</c> records upstream's
/// error kind and message; the port passes only with an exception of the kind that stands for it here AND a message
/// that names what upstream's names (an environment problem, such as a missing vocabulary, is not a refusal of the input).
/// Upstream's wording is not the port's (dacite's, numpy's), so the evidence is what both must mention:
/// IndexError — upstream's message itself and the function it was raised in (the port mirrors both);
/// Rejected (dacite strict conversion) — one of the quoted names in the message (the offending key or field);
/// TypeError from prepare's own error handler — the first word of the cause upstream printed before it.
/// </summary>
public static partial class ExpectedRefusal
{
    private static readonly Dictionary<string, Type[]> Kinds = new(StringComparer.Ordinal)
    {
        ["IndexError"] = new[] { typeof(UpstreamIndexException) },
        ["Rejected"] = new[] { typeof(ChatMLFormatException) },
        ["TypeError"] = new[] { typeof(ChatMLFormatException), typeof(ArgumentException) },
    };

    [GeneratedRegex("\"([^\"]+)\"")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"prints '[^:']*:\s*([A-Za-z_]+)")]
    private static partial Regex PrintedCause();

    /// <summary>Null when <paramref name="e"/> is the refusal the run records; else why it is not.</summary>
    public static string? Mismatch(JsonObject expectError, Exception e)
    {
        var type = expectError["type"]?.GetValue<string>() ?? "?";
        if (!Kinds.TryGetValue(type, out var kinds))
            return $"upstream raises {type}, which no refusal of the port stands for (add it to {nameof(ExpectedRefusal)})";
        if (!kinds.Any(k => k.IsInstanceOfType(e)))
            return $"upstream raises {type} but the port threw {e.GetType().Name}: {e.Message}";
        var (all, any) = Evidence(type, expectError);
        var missing = all.Where(w => !e.Message.Contains(w, StringComparison.OrdinalIgnoreCase)).ToList();
        if (missing.Count > 0) return $"upstream raises {type} ({string.Join("; ", all)}) but the port refused for another reason: {e.Message}";
        if (any.Count > 0 && !any.Any(w => e.Message.Contains(w, StringComparison.OrdinalIgnoreCase)))
            return $"upstream raises {type} naming {string.Join(" or ", any)} but the port's refusal names none of them: {e.Message}";
        return null;
    }

    /// <summary>Words the port's message must all contain, and words of which it must contain one.</summary>
    public static (IReadOnlyList<string> All, IReadOnlyList<string> Any) Evidence(string type, JsonObject expectError)
    {
        var message = expectError["message"]?.GetValue<string>() ?? "";
        switch (type)
        {
            case "IndexError":
                var all = new List<string> { message };
                if (expectError["raised_at"]?.GetValue<string>() is { Length: > 0 } at) all.Add(at.Split(' ')[0]);
                return (all, Array.Empty<string>());
            case "Rejected":
                // a dotted field path names the field by its last part (messages.content → content); type names such
                // as "NoneType" are upstream's and need not appear
                return (Array.Empty<string>(), Quoted().Matches(message).Select(m => m.Groups[1].Value.Split('.')[^1]).Distinct().ToList());
            case "TypeError":
                var cause = PrintedCause().Match(expectError["upstream"]?.GetValue<string>() ?? "");
                return (Array.Empty<string>(), cause.Success ? new[] { cause.Groups[1].Value } : Array.Empty<string>());
            default:
                return (Array.Empty<string>(), Array.Empty<string>());
        }
    }
}
