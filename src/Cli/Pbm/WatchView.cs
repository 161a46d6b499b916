using System.Text.Json.Nodes;
using HiggsCluster.Training.Engine.Observability;
using Spectre.Console;

namespace HiggsCluster.Cli.Pbm;

/// <summary>
/// run watch on the client: a live step bar with the losses and one bar per codebook loss on a terminal; one line per
/// change elsewhere (redirected output, CI).
/// </summary>
public sealed class WatchView(TextWriter stdout, bool live)
{
    public static WatchView For(TextWriter stdout) =>
        new(stdout, !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null && ReferenceEquals(stdout, Console.Out));

    private static string F(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? MetricsLog.F(d) : "-";
    private static double Num(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NaN;

    public static string Line(JsonObject s) =>
        $"{DateTime.Now:HH:mm:ss} {s["run_id"]} {s["phase"]} epoch {s["epoch"]} step {s["step"]}/{(Num(s["total_steps"]) > 0 ? s["total_steps"] : "?")}"
        + (s["loss"] is null && s["text_loss"] is null ? "" : $" loss {F(s["loss"])} (text {F(s["text_loss"])}, audio {F(s["audio_loss"])})")
        + (s["codebook_losses"] is JsonArray cb ? " codebooks " + string.Join(" ", cb.Select(F)) : "")
        + (s["detail"]?.GetValue<string>() is { Length: > 0 } d ? " — " + d : "");

    public async Task<(int, string?)> Run(Func<Func<JsonObject, Task>, Task<(int, string?)>> call)
    {
        if (!live)
            return await call(f =>
            {
                if (f["k"]?.GetValue<string>() == "data" && f["data"] is JsonObject s) stdout.WriteLine(Line(s));
                return Task.CompletedTask;
            });
        (int, string?) result = default;
        await AnsiConsole.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var steps = ctx.AddTask("starting", maxValue: 1);
                var codebooks = new List<ProgressTask>();
                double firstMax = double.NaN;
                result = await call(f =>
                {
                    if (f["k"]?.GetValue<string>() != "data" || f["data"] is not JsonObject s) return Task.CompletedTask;
                    double total = Num(s["total_steps"]), step = Num(s["step"]);
                    if (total > 0) steps.MaxValue = total;
                    steps.Value = Math.Min(step, steps.MaxValue);
                    steps.Description = Markup.Escape($"{s["run_id"]} {s["phase"]} step {s["step"]}/{(total > 0 ? total : "?")} loss {F(s["loss"])} (text {F(s["text_loss"])}, audio {F(s["audio_loss"])})");
                    if (s["codebook_losses"] is JsonArray cb)
                    {
                        // bars show each codebook's loss against the largest loss seen at the start (shorter = learnt more)
                        if (double.IsNaN(firstMax)) firstMax = cb.Select(Num).Where(double.IsFinite).DefaultIfEmpty(1).Max();
                        while (codebooks.Count < cb.Count) codebooks.Add(ctx.AddTask($"cb{codebooks.Count}", maxValue: Math.Max(1e-9, firstMax)));
                        for (int c = 0; c < cb.Count; c++)
                        {
                            codebooks[c].Description = Markup.Escape($"  codebook {c} loss {F(cb[c])}");
                            var v = Num(cb[c]);
                            codebooks[c].Value = double.IsFinite(v) ? Math.Min(v, codebooks[c].MaxValue) : 0;
                        }
                    }
                    if (s["phase"]?.GetValue<string>() is "Completed" or "Failed" or "Stopped")
                    {
                        if (s["phase"]!.GetValue<string>() == "Completed") steps.Value = steps.MaxValue;
                        steps.StopTask();
                        foreach (var t in codebooks) t.StopTask();
                    }
                    ctx.Refresh();
                    return Task.CompletedTask;
                });
            });
        return result;
    }
}
