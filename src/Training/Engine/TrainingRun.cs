using System.Diagnostics;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.Lora;
using static TorchSharp.torch;
using HiggsCluster.Planning;

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
/// The training loop of one process. One step, top to bottom: collate the plan's micro-batches, compute gradients,
/// apply them (normalise, watchdog, clip, AdamW, schedule), book the step, log it. Validation, checkpoints, plots and
/// the report hang off it; the bookkeeping (best, patience, trainer state, resume checks) is <see cref="TrainerBook"/>'s,
/// shared with the cluster's workers.
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
        var o = s.Options; var engine = s.Engine; var plan = s.Plan;
        var outDir = Path.GetFullPath(o.OutputDir);
        var ckRoot = Path.Combine(outDir, "checkpoints");
        var metricsPath = Path.Combine(outDir, "metrics.jsonl");
        Directory.CreateDirectory(outDir);
        var book = new TrainerBook(o, plan);
        if (ResumeFrom is not null) Resume(book, ckRoot, metricsPath);
        else File.Delete(metricsPath);
        TrainerBook.WriteResolvedConfig(outDir, o);
        using var metrics = new MetricsLog(metricsPath);
        using var tb = o.TensorBoard ? new TensorBoardWriter(Path.Combine(outDir, "tensorboard")) : null;
        using var samples = Generation.RunSamples.For(o, s.Model, s.Store, s.ValidationIds);

        string? lastCheckpoint = null;
        void Save()
        {
            if (lastCheckpoint == Path.Combine(ckRoot, TrainerCheckpoint.NameFor(book.NextStep))) return;
            lastCheckpoint = TrainerCheckpoint.SaveAtomic(ckRoot, s.Adapter, engine.Optimizer, book.State(engine.NonFiniteInARow));
            TrainerCheckpoint.Prune(ckRoot, o.KeepLast, book.BestStep);
        }
        ValidationResult? Validate()
        {
            if (s.ValidationIds.Count == 0) return null;
            long at = book.NextStep;
            var v = Evaluator.Run(s.Model, s.Store, s.ValidationIds, o.BatchSize, engine.LossOptions, at);
            bool best = book.Validated(at, v.Loss);
            _validations.Add(v);
            metrics.Validation(v, best);
            StepRecords.Write(tb, v);
            progress.Note($"validation at step {at}: loss {MetricsLog.F(v.Loss)} (text {MetricsLog.F(v.TextLoss)}, audio {MetricsLog.F(v.AudioLoss)})" + (best ? "  best so far" : ""));
            if (samples?.Write(at, tb, w => progress.Note("warning: " + w)) is { Count: > 0 } said)
                progress.Note($"samples at step {at}: {said.Count} in {Generation.ValidationSamples.Folder(outDir, at)}");
            if (best && at > 0) Save(); // the best adapter is kept (pruning spares it); the baseline's is the untrained one
            if (o.Plots) WritePlots(outDir);
            return v;
        }

        // the untrained adapter's validation loss: the baseline the report and best-so-far compare against
        if (book.NextStep == 0 && o.ValSteps > 0) Validate();
        long start = book.NextStep;
        progress.Begin(start, plan.TotalSteps);
        var runClock = Stopwatch.StartNew();
        long ran = 0, lastValidated = -1;
        while (book.NextStep < plan.TotalSteps && !book.PatienceSpent && !(StopAfterSteps is { } stop && ran >= stop))
        {
            long step = book.NextStep;
            var clock = Stopwatch.StartNew();
            GradientResult g; ApplyResult a;
            using (var scope = NewDisposeScope())
            {
                var ranks = Enumerable.Range(0, plan.Ranks)
                    .Select(r => (IReadOnlyList<Collation.HiggsBatch>)plan.MicroBatches(step, r).Select(ids => s.Store.Collate(ids)).ToList()).ToList();
                g = engine.ComputeGradients(ranks, step);   // forward + backward over every micro-batch (gradient accumulation)
                a = engine.ApplyGradients(g, step);         // normalise, NaN watchdog, clip, AdamW, LR schedule
            }
            book.Advance(step);
            var m = StepRecords.Of(step, plan.EpochOf(step), g, a, clock.Elapsed.TotalSeconds);
            _history.Add(m); ran++;
            metrics.Step(m);
            StepRecords.Write(tb, m);
            progress.Step(m, TimeSpan.FromSeconds(runClock.Elapsed.TotalSeconds / ran * (plan.TotalSteps - book.NextStep)));
            long next = book.NextStep;
            if (o.ValSteps > 0 && next % o.ValSteps == 0 && next < plan.TotalSteps) { Validate(); lastValidated = next; }
            if (o.SaveSteps > 0 && next % o.SaveSteps == 0) Save();
        }
        progress.End();
        bool earlyStop = book.PatienceSpent && book.NextStep < plan.TotalSteps;
        bool finished = book.NextStep >= plan.TotalSteps || earlyStop;
        if (finished && lastValidated != book.NextStep) Validate();
        Save();

        s.Adapter.Save(Path.Combine(outDir, "adapter"));
        var best = book.BestStep is { } bs ? _validations.LastOrDefault(v => v.Step == bs) : null;
        return RunOutcome.Finish(o, RunFacts.Of(s), _history, _validations, best, runClock.Elapsed, lastCheckpoint, earlyStop, ran, book.NextStep,
            book.ConsumedSamples().ToList());
    }

    /// <summary>The book, adapter and AdamW state from the checkpoint, and the history it was taken after.</summary>
    private void Resume(TrainerBook book, string ckRoot, string metricsPath)
    {
        var dir = TrainerCheckpoint.Resolve(ckRoot, ResumeFrom!);
        try
        {
            var st = TrainerCheckpoint.ReadState(dir);
            book.Restore(st, dir);
            TrainerCheckpoint.LoadTensors(dir, s.Adapter, s.Engine.Optimizer);
            TrainerCheckpoint.RestoreRng(st.RngState);
            s.Engine.NonFiniteInARow = st.NonFiniteInARow;
        }
        // a checkpoint of another plan is a bad --resume; a damaged one stays an InvalidDataException (a refused file)
        catch (TrainerStateMismatchException e) { throw new TrainConfigException("--resume", e.Message); }
        var (steps, vals) = RunHistory.Read(metricsPath, book.NextStep, truncate: true);
        _history.AddRange(steps);
        _validations.AddRange(vals);
        progress.Note($"resumed from {dir} at step {book.NextStep}");
    }

    private List<string> WritePlots(string outDir) => RunHistory.WritePlots(outDir, _history, _validations);
}
