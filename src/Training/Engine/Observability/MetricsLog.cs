using System.Globalization;
using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Engine.Observability;

/// <summary>One step's numbers, as logged to JSONL, TensorBoard and plots.</summary>
public sealed record StepMetrics(long Step, int Epoch, double Loss, double TextLoss, double AudioLoss, double[] CodebookLosses,
    double Lr, double GradNorm, long Tokens, double TokensPerSecond, double StepSeconds, bool Skipped, string? SkipReason)
{
    /// <summary>"SKIPPED (why)" for a console line; a log written before reasons were kept still says it has none.</summary>
    public static string SkipNote(string? reason) => $"SKIPPED ({(string.IsNullOrEmpty(reason) ? "reason not logged" : reason)})";
}

/// <summary>metrics.jsonl: one object per step ("type":"train") and per validation ("type":"val"); appends across resumes.</summary>
public sealed class MetricsLog(string path) : IDisposable
{
    private readonly StreamWriter _w = new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read));

    public string Path { get; } = path;

    public void Step(StepMetrics m)
    {
        var o = new JsonObject
        {
            ["type"] = "train", ["step"] = m.Step, ["epoch"] = m.Epoch, ["loss"] = N(m.Loss), ["text_loss"] = N(m.TextLoss),
            ["audio_loss"] = N(m.AudioLoss), ["codebook_losses"] = new JsonArray(m.CodebookLosses.Select(x => (JsonNode?)N(x)).ToArray()),
            ["lr"] = m.Lr, ["grad_norm"] = N(m.GradNorm), ["tokens"] = m.Tokens, ["tokens_per_s"] = Math.Round(m.TokensPerSecond, 2),
            ["step_s"] = Math.Round(m.StepSeconds, 4), ["skipped"] = m.Skipped,
        };
        if (m.SkipReason is not null) o["skip_reason"] = m.SkipReason;
        _w.WriteLine(o.ToJsonString());
        _w.Flush();
    }

    public void Validation(ValidationResult v, bool best)
    {
        var o = new JsonObject
        {
            ["type"] = "val", ["step"] = v.Step, ["loss"] = N(v.Loss), ["text_loss"] = N(v.TextLoss), ["audio_loss"] = N(v.AudioLoss),
            ["codebook_losses"] = new JsonArray(v.CodebookLosses.Select(x => (JsonNode?)N(x)).ToArray()),
            ["text_tokens"] = v.TextTokens, ["audio_frames"] = v.AudioFrames, ["samples"] = v.Samples, ["best"] = best,
        };
        _w.WriteLine(o.ToJsonString());
        _w.Flush();
    }

    /// <summary>
    /// Whether the log at <paramref name="path"/> already holds a validation of <paramref name="step"/>: a validation asked
    /// again after the worker group changed (its first validator may have finished before it died) is logged once.
    /// </summary>
    public static bool HasValidation(string path, long step)
    {
        if (!File.Exists(path)) return false;
        using var r = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        while (r.ReadLine() is { } line)
        {
            if (!line.Contains("\"val\"", StringComparison.Ordinal)) continue;
            try
            {
                if (JsonNode.Parse(line) is JsonObject j && j["type"]?.GetValue<string>() == "val" && j["step"]?.GetValue<long>() == step) return true;
            }
            catch (System.Text.Json.JsonException) { } // a torn last line of a killed writer
        }
        return false;
    }

    /// <summary>JSON has no NaN: non-finite values are written as null.</summary>
    private static JsonNode? N(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    public void Dispose() => _w.Dispose();

    /// <summary>A loss for a console line; "-" for a term the step had no targets for (NaN by convention).</summary>
    public static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.0000", CultureInfo.InvariantCulture);
}
