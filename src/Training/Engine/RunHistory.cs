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
                    j["tokens"]!.GetValue<long>(), D("tokens_per_s"), D("step_s"), j["skipped"]!.GetValue<bool>(), null));
            else if (type == "val")
                vals.Add(new ValidationResult(st, D("loss"), D("text_loss"), D("audio_loss"), Cb(), j["text_tokens"]!.GetValue<long>(), j["audio_frames"]!.GetValue<long>(), j["samples"]!.GetValue<int>()));
        }
        if (truncate) File.WriteAllLines(path, keep);
        return (steps, vals);
    }

    public static List<string> WritePlots(string outDir, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> validations)
    {
        var dir = Path.Combine(outDir, "plots");
        var plot = new LinePlotPng();
        var ok = history.Where(h => !h.Skipped).ToList();
        List<(double, double)> Pts(Func<StepMetrics, double> f) => ok.Select(h => ((double)h.Step + 1, f(h))).ToList();
        var files = new List<string>();
        string P(string n) { var p = Path.Combine(dir, n); files.Add(p); return p; }
        plot.Write(P("loss.png"), "training loss", new[]
        {
            new LinePlotPng.Series("loss", Pts(h => h.Loss)), new LinePlotPng.Series("text", Pts(h => h.TextLoss)),
            new LinePlotPng.Series("audio", Pts(h => h.AudioLoss)),
        });
        int k = ok.Count > 0 ? ok[0].CodebookLosses.Length : 0;
        plot.Write(P("codebooks.png"), "training loss per codebook",
            Enumerable.Range(0, k).Select(c => new LinePlotPng.Series($"cb{c}", Pts(h => h.CodebookLosses.Length > c ? h.CodebookLosses[c] : double.NaN))).ToList());
        List<(double, double)> V(Func<ValidationResult, double> f) => validations.Select(v => ((double)v.Step, f(v))).ToList();
        plot.Write(P("validation.png"), "validation loss", new[]
        {
            new LinePlotPng.Series("val loss", V(v => v.Loss)), new LinePlotPng.Series("val text", V(v => v.TextLoss)),
            new LinePlotPng.Series("val audio", V(v => v.AudioLoss)), new LinePlotPng.Series("train loss", Pts(h => h.Loss)),
        });
        return files;
    }
}
