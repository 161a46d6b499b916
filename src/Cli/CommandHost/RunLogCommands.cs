using System.Text.Json;
using System.Text.Json.Nodes;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>
/// run logs / run plot: read the run's metrics.jsonl (written by the lead worker into train.output_dir, a folder the
/// submit policy keeps under the output roots; nodes share it through the volume the roots live on).
/// </summary>
public static class RunLogCommands
{
    private static string D(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? MetricsLog.F(d) : "-";

    public static string Human(JsonObject o)
    {
        var cb = o["codebook_losses"] is JsonArray a ? " codebooks " + string.Join(" ", a.Select(D)) : "";
        return o["type"]?.GetValue<string>() == "val"
            ? $"val   step {o["step"]} loss {D(o["loss"])} (text {D(o["text_loss"])}, audio {D(o["audio_loss"])}){cb}" + (o["best"]?.GetValue<bool>() == true ? " best" : "")
            : $"train step {o["step"]} epoch {o["epoch"]} loss {D(o["loss"])} (text {D(o["text_loss"])}, audio {D(o["audio_loss"])}){cb} lr {D(o["lr"])} {o["tokens_per_s"]} tok/s"
              + (o["skipped"]?.GetValue<bool>() == true ? " " + StepMetrics.SkipNote(o["skip_reason"]?.GetValue<string>()) : "");
    }

    public static async Task<int> Logs(CommandHandlers h, CommandContext ctx)
    {
        if (await RunCommands.Find(h, ctx.Arg(0), ctx.Ct) is not { } run) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
        var path = Path.Combine(run.OutputDir, "metrics.jsonl");
        bool follow = ctx.Args.Flag("follow");
        int tail = ctx.Args.Int("tail", int.MaxValue);
        if (!File.Exists(path) && !follow) return ctx.Fail(ExitCodes.NotFound, $"run {run.RunId} has no metrics yet ({path})");
        long offset = 0;
        bool first = true;
        while (true)
        {
            if (File.Exists(path))
            {
                using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                f.Seek(offset, SeekOrigin.Begin);
                var text = await new StreamReader(f).ReadToEndAsync(ctx.Ct);
                int complete = text.LastIndexOf('\n') + 1; // a line being written is read next time
                offset += System.Text.Encoding.UTF8.GetByteCount(text[..complete]);
                var lines = text[..complete].Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (first && tail < lines.Length) lines = lines[^tail..];
                foreach (var line in lines)
                {
                    JsonObject? o;
                    try { o = JsonNode.Parse(line) as JsonObject; }
                    catch (JsonException) { o = null; }
                    if (o is null) { await ctx.Out("(unreadable line) " + line); continue; }
                    await ctx.Result(o, () => Human(o));
                }
                first = false;
            }
            if (!follow) return ExitCodes.Ok;
            if (RunCommands.IsTerminal(run.Phase)) return ExitCodes.Ok; // the file was read once more after the end
            await Task.Delay(500, ctx.Ct);
            run = await RunCommands.Find(h, run.RunId, ctx.Ct) ?? run;
        }
    }

    /// <summary>Writes plots/loss.png, plots/codebooks.png, plots/validation.png; with --out also sends the PNG bytes.</summary>
    public static async Task<int> Plot(CommandHandlers h, CommandContext ctx)
    {
        if (await RunCommands.Find(h, ctx.Arg(0), ctx.Ct) is not { } run) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
        var path = Path.Combine(run.OutputDir, "metrics.jsonl");
        if (!File.Exists(path)) return ctx.Fail(ExitCodes.NotFound, $"run {run.RunId} has no metrics yet ({path})");
        var files = WritePlots(path, run.OutputDir);
        if (ctx.Args.Get("out") is not null)
            foreach (var f in files)
                await ctx.Data(new JsonObject { ["file"] = Path.GetFileName(f), ["png_base64"] = Convert.ToBase64String(await File.ReadAllBytesAsync(f, ctx.Ct)) });
        await ctx.Result(new JsonObject { ["run_id"] = run.RunId, ["files"] = new JsonArray(files.Select(f => (JsonNode?)f).ToArray()) },
            () => string.Join("\n", files.Select(f => "wrote " + f)));
        return ExitCodes.Ok;
    }

    /// <summary>
    /// The audio samples of the run's latest validation (or of --step N): listed, and with --out sent over (WAV and
    /// spectrogram PNG) to be saved on the CLI's machine under DIR/step-NNNNNNN/.
    /// </summary>
    public static async Task<int> Samples(CommandHandlers h, CommandContext ctx)
    {
        if (await RunCommands.Find(h, ctx.Arg(0), ctx.Ct) is not { } run) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
        var root = Path.Combine(run.OutputDir, "samples");
        var steps = Directory.Exists(root) ? Directory.GetDirectories(root, "step-*").OrderBy(d => d, StringComparer.Ordinal).ToList() : new List<string>();
        if (ctx.Args.Get("step") is { } want)
        {
            if (!long.TryParse(want, out var n) || n < 0) return ctx.Fail(ExitCodes.Usage, $"--step must be a step number, got '{want}'");
            steps = steps.Where(d => Path.GetFileName(d) == $"step-{n:D7}").ToList();
        }
        if (steps.Count == 0) return ctx.Fail(ExitCodes.NotFound, $"run {run.RunId} has no samples{(ctx.Args.Get("step") is { } s ? $" at step {s}" : "")} yet ({root}; eval.samples, written at each validation)");
        var dir = steps[^1];
        var files = Directory.GetFiles(dir).Where(f => f.EndsWith(".wav", StringComparison.Ordinal) || f.EndsWith(".png", StringComparison.Ordinal))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (ctx.Args.Get("out") is not null)
            foreach (var f in files)
                await ctx.Data(new JsonObject { ["file"] = Path.GetFileName(dir) + "/" + Path.GetFileName(f), ["bytes_base64"] = Convert.ToBase64String(await File.ReadAllBytesAsync(f, ctx.Ct)) });
        await ctx.Result(new JsonObject { ["run_id"] = run.RunId, ["step_dir"] = dir, ["files"] = new JsonArray(files.Select(f => (JsonNode?)f).ToArray()) },
            () => string.Join("\n", files.Select(f => f)));
        return ExitCodes.Ok;
    }

    /// <summary>The plots of the run whose log is <paramref name="metricsPath"/>, written under <paramref name="outDir"/>/plots.</summary>
    public static List<string> WritePlots(string metricsPath, string outDir)
    {
        var (steps, validations) = RunHistory.Read(metricsPath);
        return RunHistory.WritePlots(outDir, steps, validations);
    }
}
