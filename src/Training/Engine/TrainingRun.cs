using System.Diagnostics;
using System.Text.Json.Nodes;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.Lora;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>Receives progress; the CLI shows a live bar, tests and CI get plain lines.</summary>
public interface ITrainingProgress
{
    void Begin(long firstStep, long totalSteps);
    void Step(StepMetrics m, TimeSpan eta);
    void Note(string line);
    void End();
}

public sealed class LineProgress(TextWriter w, int every) : ITrainingProgress
{
    public void Begin(long firstStep, long totalSteps) => w.WriteLine($"train: steps {firstStep + 1}..{totalSteps}");
    public void Step(StepMetrics m, TimeSpan eta)
    {
        if ((m.Step + 1) % every != 0 && !m.Skipped) return;
        w.WriteLine($"step {m.Step + 1,6}  loss {MetricsLog.F(m.Loss)}  text {MetricsLog.F(m.TextLoss)}  audio {MetricsLog.F(m.AudioLoss)}  " +
                    $"lr {m.Lr:0.###e+0}  |g| {m.GradNorm:0.###}  {m.TokensPerSecond:0} tok/s  eta {eta:hh\\:mm\\:ss}" + (m.Skipped ? "  " + StepMetrics.SkipNote(m.SkipReason) : ""));
    }
    public void Note(string line) => w.WriteLine(line);
    public void End() { }
}

/// <summary>What a run left behind.</summary>
public sealed record TrainingOutcome(string OutputDir, string AdapterDir, string MetricsPath, string ReportPath, IReadOnlyList<string> Plots,
    long StepsRun, long NextStep, double FirstLoss, double LastLoss, ValidationResult? Best, ValidationResult? LastValidation,
    IReadOnlyList<long> ConsumedSamples, bool EarlyStopped, string? LastCheckpoint);

/// <summary>
/// The training loop. One step, top to bottom: collate the plan's micro-batches, compute gradients, apply them
/// (normalise, watchdog, clip, AdamW, schedule), log. Validation, checkpoints, plots and the report hang off it.
/// </summary>
public sealed class TrainingRun(TrainingSession s, ITrainingProgress progress)
{
    /// <summary>Stop (with a checkpoint) after this many steps of this invocation; for tests of resume and for interruption.</summary>
    public long? StopAfterSteps { get; init; }
    public string? ResumeFrom { get; init; }

    private readonly List<StepMetrics> _history = new();
    private readonly List<ValidationResult> _validations = new();

    public TrainingOutcome Run()
    {
        var o = s.Options;
        var outDir = Path.GetFullPath(o.OutputDir);
        var ckRoot = Path.Combine(outDir, "checkpoints");
        Directory.CreateDirectory(outDir);
        var engine = s.Engine; var plan = s.Plan;

        long start = 0; var consumed = new List<long>();
        double? bestLoss = null; long? bestStep = null; int noImprove = 0;
        if (ResumeFrom is not null)
        {
            var dir = TrainerCheckpoint.Resolve(ckRoot, ResumeFrom);
            var st = TrainerCheckpoint.Load(dir, s.Adapter, engine.Optimizer);
            if (st.TotalSteps != plan.TotalSteps)
                throw new TrainConfigException("--resume", $"{dir} was made for a {st.TotalSteps}-step run, this run has {plan.TotalSteps} steps (schedule would differ)");
            var expect = Enumerable.Range(0, (int)st.NextStep).SelectMany(x => plan.StepSamples(x)).ToList();
            if (!expect.SequenceEqual(st.ConsumedSamples))
                throw new TrainConfigException("--resume", $"{dir}: the consumed samples differ from this run's plan (manifest, split, seed or batch sizes changed)");
            TrainerCheckpoint.RestoreRng(st.RngState);
            start = st.NextStep; consumed.AddRange(st.ConsumedSamples);
            bestLoss = st.BestValLoss; bestStep = st.BestStep; noImprove = st.ValidationsWithoutImprovement;
            engine.NonFiniteInARow = st.NonFiniteInARow;
            LoadHistory(Path.Combine(outDir, "metrics.jsonl"), start);
            progress.Note($"resumed from {dir} at step {start}");
        }
        File.WriteAllText(Path.Combine(outDir, "resolved_config.yaml"), string.Join("\n", o.Resolved().Select(kv => $"{kv.Key}: \"{kv.Value.Replace("\"", "\\\"")}\"")) + "\n");
        if (ResumeFrom is null && File.Exists(Path.Combine(outDir, "metrics.jsonl"))) File.Delete(Path.Combine(outDir, "metrics.jsonl"));
        using var metrics = new MetricsLog(Path.Combine(outDir, "metrics.jsonl"));
        using var tb = o.TensorBoard ? new TensorBoardWriter(Path.Combine(outDir, "tensorboard")) : null;
        using var samples = Generation.RunSamples.For(o, s.Model, s.Store, s.ValidationIds);

        string? lastCheckpoint = null;
        TrainerState State(long next) => new()
        {
            NextStep = next, Epoch = plan.EpochOf(Math.Max(0, next - 1)), TotalSteps = plan.TotalSteps, ConsumedSamples = consumed.ToList(),
            NonFiniteInARow = engine.NonFiniteInARow, BestValLoss = bestLoss, BestStep = bestStep, ValidationsWithoutImprovement = noImprove,
            RngState = TrainerCheckpoint.CaptureRng(), Config = o.Resolved(),
        };
        void Save(long next)
        {
            lastCheckpoint = TrainerCheckpoint.SaveAtomic(ckRoot, s.Adapter, engine.Optimizer, State(next));
            TrainerCheckpoint.Prune(ckRoot, o.KeepLast, bestStep);
        }
        bool earlyStop = false;
        ValidationResult? Validate(long next)
        {
            if (s.ValidationIds.Count == 0) return null;
            var v = Evaluator.Run(s.Model, s.Store, s.ValidationIds, o.BatchSize, engine.LossOptions, next);
            bool best = Evaluator.IsBest(v.Loss, bestLoss);
            if (best) { bestLoss = v.Loss; bestStep = next; noImprove = 0; } else noImprove++;
            _validations.Add(v);
            metrics.Validation(v, best);
            tb?.Scalars(next, new[] { ("val/loss", v.Loss), ("val/text_loss", v.TextLoss), ("val/audio_loss", v.AudioLoss) }
                .Concat(v.CodebookLosses.Select((x, c) => ($"val/codebook_{c}", x))));
            progress.Note($"validation at step {next}: loss {MetricsLog.F(v.Loss)} (text {MetricsLog.F(v.TextLoss)}, audio {MetricsLog.F(v.AudioLoss)})" + (best ? "  best so far" : ""));
            if (samples?.Write(next, tb, w => progress.Note("warning: " + w)) is { Count: > 0 } said)
                progress.Note($"samples at step {next}: {said.Count} in {Generation.ValidationSamples.Folder(outDir, next)}");
            if (best && next > 0) Save(next);
            if (o.EarlyStoppingPatience > 0 && noImprove >= o.EarlyStoppingPatience) earlyStop = true;
            if (o.Plots) WritePlots(outDir);
            return v;
        }

        // the untrained adapter's validation loss: the baseline the report and best-so-far compare against
        if (start == 0 && o.ValSteps > 0) Validate(0);
        progress.Begin(start, plan.TotalSteps);
        var runClock = Stopwatch.StartNew();
        long step = start, ran = 0; long? lastValidated = null, lastSaved = null;
        for (; step < plan.TotalSteps && !earlyStop; step++)
        {
            if (StopAfterSteps is { } stop && ran >= stop) break;
            var clock = Stopwatch.StartNew();
            GradientResult g; ApplyResult a;
            using (var scope = NewDisposeScope())
            {
                var ranks = Enumerable.Range(0, plan.Ranks)
                    .Select(r => (IReadOnlyList<Collation.HiggsBatch>)plan.MicroBatches(step, r).Select(ids => s.Store.Collate(ids)).ToList()).ToList();
                g = engine.ComputeGradients(ranks, step);
                a = engine.ApplyGradients(g, step);
            }
            consumed.AddRange(plan.StepSamples(step));
            double secs = clock.Elapsed.TotalSeconds;
            var m = new StepMetrics(step, plan.EpochOf(step), g.Loss, g.TextLoss, g.AudioLoss, g.CodebookLosses, a.Lr, a.GradNorm,
                g.Positions, g.Positions / Math.Max(1e-9, secs), secs, !a.Applied, a.SkipReason);
            _history.Add(m); ran++;
            metrics.Step(m);
            tb?.Scalars(step + 1, new[] { ("train/loss", m.Loss), ("train/text_loss", m.TextLoss), ("train/audio_loss", m.AudioLoss),
                ("train/lr", m.Lr), ("train/grad_norm", m.GradNorm), ("train/tokens_per_s", m.TokensPerSecond) }
                .Concat(m.CodebookLosses.Select((x, c) => ($"train/codebook_{c}", x))));
            var eta = TimeSpan.FromSeconds(runClock.Elapsed.TotalSeconds / ran * (plan.TotalSteps - step - 1));
            progress.Step(m, eta);
            long next = step + 1;
            if (o.ValSteps > 0 && next % o.ValSteps == 0 && next < plan.TotalSteps) { Validate(next); lastValidated = next; }
            if (o.SaveSteps > 0 && next % o.SaveSteps == 0 && lastCheckpoint != Path.Combine(ckRoot, TrainerCheckpoint.NameFor(next))) { Save(next); lastSaved = next; }
        }
        progress.End();
        bool finished = step >= plan.TotalSteps || earlyStop;
        ValidationResult? lastVal = _validations.LastOrDefault();
        if (finished && lastValidated != step) lastVal = Validate(step) ?? lastVal;
        if (lastCheckpoint != Path.Combine(ckRoot, TrainerCheckpoint.NameFor(step))) Save(step);

        var adapterDir = Path.Combine(outDir, "adapter");
        s.Adapter.Save(adapterDir);
        var plots = o.Plots ? WritePlots(outDir) : new List<string>();
        var best = bestStep is null ? null : _validations.FirstOrDefault(v => v.Step == bestStep);
        var (first, last) = RunHistory.FirstAndLastLoss(_history);
        var report = RunReport.Write(Path.Combine(outDir, "report.md"), o, s, _history, _validations, best, runClock.Elapsed, adapterDir, plots, lastCheckpoint, earlyStop, first, last);
        return new TrainingOutcome(outDir, adapterDir, metrics.Path, report, plots, ran, step, first, last, best, lastVal, consumed, earlyStop, lastCheckpoint);
    }

    private void LoadHistory(string path, long before)
    {
        var (steps, vals) = RunHistory.Read(path, before, truncate: true);
        _history.AddRange(steps);
        _validations.AddRange(vals);
    }

    private List<string> WritePlots(string outDir) => RunHistory.WritePlots(outDir, _history, _validations);
}
