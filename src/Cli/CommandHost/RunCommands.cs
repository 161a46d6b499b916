using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HiggsCluster.Cli.Node;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Messages;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>The run palette's control commands: submit (with the path policy), list, status, watch, stop, checkpoint, validate.</summary>
public static partial class RunCommands
{
    /// <summary>The resolved config travels as repeated --resolved key=value (the CLI reads the YAML on its side).</summary>
    public const string ResolvedOption = "resolved";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex RunIdPattern();

    /// <summary>Every path of the run against the roots (read: data or output roots; written: output roots); empty when the run stays inside them.</summary>
    public static List<string> PathViolations(RunOptions config, CommandHostOptions o)
    {
        var problems = new List<string>();
        var readable = o.DataRoots.Concat(o.OutputRoots).Distinct().ToList();
        void Check(string key, string? v, IReadOnlyList<string> roots, string kind)
        {
            if (string.IsNullOrWhiteSpace(v)) return;
            if (!Path.IsPathRooted(v)) { problems.Add($"{key} = {v} is not an absolute path"); return; }
            if (PathGuard.Check(key, v, roots, kind) is { } p) problems.Add(p);
        }
        (string Key, string? Value)[] reads =
        {
            ("data.manifest", config.Manifest), ("data.validation_manifest", config.ValidationManifest), ("data.data_root", config.DataRoot),
            ("data.text_tokenizer", config.TextTokenizer), ("data.audio_tokenizer", config.AudioTokenizer), ("model.base_checkpoint", config.BaseModelDir),
        };
        foreach (var (key, v) in reads) Check(key, v, readable, "data and output roots");
        // every corpus of a mixed dataset is read too: its manifest and its data root
        for (int i = 0; i < config.Manifests.Count; i++)
        {
            Check($"data.manifests[{i}].path", config.Manifests[i].Path, readable, "data and output roots");
            Check($"data.manifests[{i}].data_root", config.Manifests[i].DataRoot, readable, "data and output roots");
        }
        Check("train.output_dir", config.OutputDir, o.OutputRoots, "output roots");
        Check("data.code_cache", config.CodeCache, o.OutputRoots, "output roots");
        return problems;
    }

    public static async Task<int> Submit(CommandHandlers h, CommandContext ctx)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in ctx.Args.All(ResolvedOption))
        {
            int eq = kv.IndexOf('=');
            if (eq <= 0) return ctx.Fail(ExitCodes.Usage, $"--{ResolvedOption} '{kv}' is not key=value");
            pairs[kv[..eq]] = kv[(eq + 1)..];
        }
        if (pairs.Count == 0) return ctx.Fail(ExitCodes.Usage, "run submit needs a config: higgs <host:port> run submit --config f.yaml");
        var runId = ctx.Args.Get("run-id") ?? $"run-{DateTime.UtcNow:yyyyMMdd-HHmmss}";
        if (!RunIdPattern().IsMatch(runId)) return ctx.Fail(ExitCodes.Usage, $"run id '{runId}' must be 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)");

        // the one parse of the received text; a value of the wrong form is refused naming its key
        RunOptions config;
        try { config = RunOptionKeys.FromResolved(pairs); }
        catch (TrainConfigException e) { return ctx.Fail(ExitCodes.Usage, e.Message); }
        // the policy comes before any file is touched: a refused run learns nothing about files outside the roots
        var violations = PathViolations(config, h.Options);
        if (violations.Count > 0) return ctx.Refuse(string.Join("; ", violations));
        RunSpec spec;
        try { spec = RunSpecFactory.From(TrainOptions.From(config), runId, ctx.Args.Int("shards", 16), ctx.Args.Int("start-workers", 1), checkFiles: true); }
        catch (TrainConfigException e) { return ctx.Fail(ExitCodes.Usage, e.Message); }
        if (ctx.Args.Get("resume") is { } resume)
        {
            // a checkpoint is read like the run's inputs: only under the roots
            var refused = resume == "latest" ? null
                : !Path.IsPathRooted(resume) ? $"--resume {resume} is not an absolute path (or 'latest')"
                : PathGuard.Check("--resume", resume, h.Options.DataRoots.Concat(h.Options.OutputRoots).Distinct().ToList(), "data and output roots");
            if (refused is not null) return ctx.Refuse(refused);
            try { spec = RunSpecFactory.Resumed(spec, TrainerCheckpoint.Resolve(Path.Combine(spec.Options.OutputDir, "checkpoints"), resume)); }
            catch (TrainConfigException e) { return ctx.Fail(ExitCodes.Failed, e.Message); }
        }
        switch (await h.Ask<object>(new SubmitRun(spec), ctx.Ct))
        {
            case RunAccepted a:
                await ctx.Result(new JsonObject { ["run_id"] = a.RunId, ["accepted"] = true, ["output_dir"] = spec.Options.OutputDir },
                    () => $"run {a.RunId} accepted; output in {spec.Options.OutputDir}");
                return ExitCodes.Ok;
            case RunRejected r:
                return ctx.Fail(ExitCodes.Failed, $"run {r.RunId} rejected: {r.Reason}");
            case var other:
                return ctx.Fail(ExitCodes.Failed, $"unexpected answer {other?.GetType().Name}");
        }
    }

    public static async Task<RunSummary?> Find(CommandHandlers h, string runId, CancellationToken ct) =>
        (await h.Ask<RunList>(new ListRuns(runId), ct)).Runs.FirstOrDefault(r => r.RunId == runId);

    public static bool IsTerminal(RunPhase p) => p is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped;

    private static JsonNode? N(double v) => double.IsFinite(v) ? JsonValue.Create(Math.Round(v, 6)) : null;

    public static JsonObject SummaryJson(RunSummary r)
    {
        var o = new JsonObject
        {
            ["run_id"] = r.RunId, ["phase"] = r.Phase.ToString(), ["epoch"] = r.Epoch, ["step"] = r.CommittedSteps,
            ["total_steps"] = r.TotalSteps, ["detail"] = r.Detail, ["output_dir"] = r.OutputDir,
        };
        if (Losses(r.LastStats) is { } g)
        {
            o["loss"] = N(g.Loss);
            o["text_loss"] = N(g.TextLoss);
            o["audio_loss"] = N(g.AudioLoss);
            o["codebook_losses"] = new JsonArray(g.CodebookLosses.Select(N).ToArray());
            o["positions"] = g.Positions;
        }
        return o;
    }

    /// <summary>The last committed step's statistics (see <see cref="GradientResult.ToVector"/>); null before the first step.</summary>
    public static GradientResult? Losses(double[] stats)
    {
        if (stats.Length < 7 || (stats.Length - 7) % 2 != 0) return null;
        return GradientResult.FromVector(stats);
    }

    public static string Line(RunSummary r)
    {
        var g = Losses(r.LastStats);
        var losses = g is null ? "" : $" loss {MetricsLog.F(g.Loss)} (text {MetricsLog.F(g.TextLoss)}, audio {MetricsLog.F(g.AudioLoss)})"
            + " codebooks " + string.Join(" ", g.CodebookLosses.Select(MetricsLog.F));
        var total = r.TotalSteps > 0 ? r.TotalSteps.ToString(CultureInfo.InvariantCulture) : "?";
        return $"{r.RunId} {r.Phase} epoch {r.Epoch} step {r.CommittedSteps}/{total}{losses}" + (r.Detail.Length > 0 ? $" — {r.Detail}" : "");
    }

    public static async Task<int> List(CommandHandlers h, CommandContext ctx)
    {
        var runs = (await h.Ask<RunList>(new ListRuns(), ctx.Ct)).Runs;
        await ctx.Result(new JsonArray(runs.Select(r => (JsonNode?)SummaryJson(r)).ToArray()),
            () => runs.Length == 0 ? "no runs" : string.Join("\n", runs.Select(Line)));
        return ExitCodes.Ok;
    }

    public static async Task<int> Status(CommandHandlers h, CommandContext ctx)
    {
        if (await Find(h, ctx.Arg(0), ctx.Ct) is not { } r) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
        await ctx.Result(SummaryJson(r), () => Line(r) + $"\noutput: {r.OutputDir}");
        return ExitCodes.Ok;
    }

    /// <summary>One result per change (phase, step, detail) until the run ends; the exit code says how it ended.</summary>
    public static async Task<int> Watch(CommandHandlers h, CommandContext ctx)
    {
        var interval = TimeSpan.FromSeconds(double.TryParse(ctx.Args.Get("interval"), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s >= 0.1 ? s : 0.5);
        string? last = null;
        while (true)
        {
            if (await Find(h, ctx.Arg(0), ctx.Ct) is not { } r) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
            var key = $"{r.Phase}|{r.CommittedSteps}|{r.TotalSteps}|{r.Detail}";
            if (key != last) { await ctx.Result(SummaryJson(r), () => $"{DateTime.UtcNow:HH:mm:ss} " + Line(r)); last = key; }
            if (IsTerminal(r.Phase))
                return r.Phase switch
                {
                    RunPhase.Completed => ExitCodes.Ok,
                    RunPhase.Stopped => ctx.Fail(ExitCodes.Stopped, $"run {r.RunId} stopped: {r.Detail}"),
                    _ => ctx.Fail(ExitCodes.Failed, $"run {r.RunId} failed: {r.Detail}"),
                };
            await Task.Delay(interval, ctx.Ct);
        }
    }

    private static async Task<int> Control(CommandHandlers h, CommandContext ctx, Func<string, object> message, string what)
    {
        if (await Find(h, ctx.Arg(0), ctx.Ct) is not { } r) return ctx.Fail(ExitCodes.NotFound, $"unknown run '{ctx.Arg(0)}'");
        if (IsTerminal(r.Phase)) return ctx.Fail(ExitCodes.Failed, $"run {r.RunId} is already {r.Phase}");
        await h.Tell(message(r.RunId), ctx.Ct);
        await ctx.Result(new JsonObject { ["run_id"] = r.RunId, ["requested"] = what }, () => $"{what} requested for run {r.RunId} (at step {r.CommittedSteps})");
        return ExitCodes.Ok;
    }

    public static Task<int> Stop(CommandHandlers h, CommandContext ctx) => Control(h, ctx, id => new StopRun(id, ctx.Args.Flag("checkpoint")), "stop");
    public static Task<int> Checkpoint(CommandHandlers h, CommandContext ctx) => Control(h, ctx, id => new RequestCheckpoint(id, ctx.Args.Get("tag")), "checkpoint");
    public static Task<int> Validate(CommandHandlers h, CommandContext ctx) => Control(h, ctx, id => new RequestValidation(id), "validation");
}
