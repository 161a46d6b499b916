using System.Text.Json.Nodes;
using HiggsCluster.Training.Engine.Observability;

namespace HiggsCluster.Training.Engine;

/// <summary>A run's history as metrics.jsonl holds it, and the PNG curves drawn from it (engine loop and cluster alike).</summary>
public static class RunHistory
{
    /// <summary>
    /// Train steps before <paramref name="before"/> and validations up to it from metrics.jsonl; with
    /// <paramref name="truncate"/> the file keeps only those lines (a resume runs the later steps again).
    /// </summary>
    public static (List<StepMetrics> Steps, List<ValidationResult> Validations) Read(string path, long before = long.MaxValue, bool truncate = false)
    {
        var steps = new List<StepMetrics>(); var vals = new List<ValidationResult>();
        if (!File.Exists(path)) return (steps, vals);
        // keep the log consistent with the checkpoint: drop steps after it (they will be run again)
        // a step or validation logged twice (a commit re-sent to a new lead, a validation asked again, a step trained
        // again after a roll-back) counts once: the last record wins
        var records = new List<(JsonObject J, string Line, string? Type, long Step)>();
        var last = new Dictionary<(string?, long), int>();
        foreach (var line in File.ReadLines(path))
        {
            JsonObject? j;
            try { j = JsonNode.Parse(line) as JsonObject; }
            catch (System.Text.Json.JsonException) { continue; } // a torn last line of a killed writer
            if (j is null) continue;
            long st = j["step"]!.GetValue<long>();
            var type = j["type"]?.GetValue<string>();
            if (type == "train" && st >= before || type == "val" && st > before) continue;
            last[(type, st)] = records.Count;
            records.Add((j, line, type, st));
        }
        var keep = new List<string>();
        for (int i = 0; i < records.Count; i++)
        {
            var (j, line, type, st) = records[i];
            if (last[(type, st)] != i) continue;
            keep.Add(line);
            double D(string k) => j[k] is JsonValue v ? v.GetValue<double>() : double.NaN;
            double[] Cb() => j["codebook_losses"] is JsonArray a ? a.Select(x => x is null ? double.NaN : x.GetValue<double>()).ToArray() : Array.Empty<double>();
            if (type == "train")
                steps.Add(new StepMetrics(st, j["epoch"]!.GetValue<int>(), D("loss"), D("text_loss"), D("audio_loss"), Cb(), D("lr"), D("grad_norm"),
                    j["tokens"]!.GetValue<long>(), D("tokens_per_s"), D("step_s"), j["skipped"]!.GetValue<bool>(), j["skip_reason"]?.GetValue<string>()));
            else if (type == "val")
                vals.Add(new ValidationResult(st, D("loss"), D("text_loss"), D("audio_loss"), Cb(), j["text_tokens"]!.GetValue<long>(), j["audio_frames"]!.GetValue<long>(), j["samples"]!.GetValue<int>()));
        }
        if (truncate) File.WriteAllLines(path, keep);
        return (steps, vals);
    }

    /// <summary>
    /// The loss at the start and at the end of the trained steps, each the mean of up to 5 steps. The two windows never
    /// share a step (a 6-step run compares steps 1–3 with 4–6): overlapping, a short run reported one number twice.
    /// </summary>
    public static (double First, double Last) FirstAndLastLoss(IReadOnlyList<StepMetrics> history)
    {
        var losses = history.Where(h => !h.Skipped && double.IsFinite(h.Loss)).Select(h => h.Loss).ToList();
        if (losses.Count == 0) return (double.NaN, double.NaN);
        int w = Math.Clamp(losses.Count / 2, 1, 5);
        return (losses.Take(w).Average(), losses.Skip(losses.Count - w).Average());
    }

    /// <summary>plots/loss.png, codebooks.png and validation.png under <paramref name="outDir"/>.</summary>
    public static List<string> WritePlots(string outDir, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> validations) =>
        TrainingPlots.Write(Path.Combine(outDir, "plots"), history, validations);
}
