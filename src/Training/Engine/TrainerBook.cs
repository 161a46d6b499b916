using System.Text.Json;
using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// The one owner of a run's trainer bookkeeping: how many steps are done, the best validation so far and early-stopping
/// patience, and the <see cref="TrainerState"/> built from them for a checkpoint or a hand-over to a peer (one schema
/// for both), checked against the run's plan when it is read back. The engine loop, the cluster's workers and the
/// in-process cluster's outcome all keep their books here, so the paths cannot drift apart.
/// </summary>
/// <remarks>
/// The validation of the untrained adapter at step 0 (the baseline) is the first best: a run whose training never beats
/// it uses up its patience and reports the baseline as its best (no checkpoint is kept for it: there is nothing to
/// keep). The coordinator's early-stopping decision on the cluster path counts it the same way, so the two agree.
/// This differs from the Hugging Face Trainer, whose <c>eval_on_start</c> never becomes its <c>best_metric</c>;
/// following it needs this method and the coordinator's validation bookkeeping changed together.
/// </remarks>
public sealed class TrainerBook
{
    private readonly TrainOptions _o;
    private readonly SamplePlan _plan;

    /// <summary>The next global step to run (= optimizer steps taken, skipped ones included).</summary>
    public long NextStep { get; private set; }
    public double? BestLoss { get; private set; }
    public long? BestStep { get; private set; }
    public int ValidationsWithoutImprovement { get; private set; }

    public TrainerBook(TrainOptions o, SamplePlan plan) { _o = o; _plan = plan; }

    /// <summary>True once early-stopping patience is used up.</summary>
    public bool PatienceSpent => _o.EarlyStoppingPatience > 0 && ValidationsWithoutImprovement >= _o.EarlyStoppingPatience;

    /// <summary>Step <paramref name="step"/> is done (applied or skipped by the watchdog).</summary>
    public void Advance(long step) => NextStep = step + 1;

    /// <summary>The steps before <paramref name="nextStep"/> are done, as a cluster's commit says (a worker may not have stepped them all).</summary>
    public void Committed(long nextStep) => NextStep = nextStep;

    private long? _lastValidated;

    /// <summary>
    /// Takes a validation loss into best-so-far and patience; true when it is the new best. The same step asked again
    /// (a repeated command) is counted once.
    /// </summary>
    public bool Validated(long step, double loss)
    {
        if (_lastValidated == step) return BestStep == step;
        _lastValidated = step;
        bool best = Evaluator.IsBest(loss, BestLoss);
        if (best) { BestLoss = loss; BestStep = step; ValidationsWithoutImprovement = 0; }
        else ValidationsWithoutImprovement++;
        return best;
    }

    /// <summary>
    /// Takes the run's early-stopping counts as the coordinator keeps them: this book may have started after validations
    /// it did not see (a worker that became the lead later). The best's step comes with them (null from a coordinator
    /// that does not know it: then a best this book did not validate itself has no known step here).
    /// </summary>
    public void Adopt(double? bestLoss, int validationsWithoutImprovement, long? bestStep = null)
    {
        if (validationsWithoutImprovement < 0)
            throw new ArgumentOutOfRangeException(nameof(validationsWithoutImprovement), validationsWithoutImprovement, "validations without improvement below 0");
        if (bestStep is not null) BestStep = bestLoss is null ? null : bestStep;
        else if (!Nullable.Equals(bestLoss, BestLoss)) BestStep = null;
        BestLoss = bestLoss;
        ValidationsWithoutImprovement = validationsWithoutImprovement;
    }

    /// <summary>The best of a run's validation history, by the same rule the books keep (the in-process cluster reads it from metrics.jsonl).</summary>
    public static ValidationResult? BestOf(IEnumerable<ValidationResult> history, TrainOptions o, SamplePlan plan)
    {
        var book = new TrainerBook(o, plan);
        ValidationResult? best = null;
        foreach (var v in history) if (book.Validated(v.Step, v.Loss)) best = v;
        return best;
    }

    /// <summary>Sample ids of the finished steps, in order (the data cursor), recomputed from the plan.</summary>
    public IEnumerable<long> ConsumedSamples() => Enumerable.Range(0, (int)NextStep).SelectMany(s => _plan.StepSamples(s));

    /// <summary>The state a checkpoint or a hand-over carries; the RNG is torch's process-wide generator as it is now.</summary>
    public TrainerState State(int nonFiniteInARow) => new()
    {
        NextStep = NextStep, Epoch = _plan.EpochOf(Math.Max(0, NextStep - 1)), TotalSteps = _plan.TotalSteps,
        ConsumedSamples = ConsumedSamples().ToList(), NonFiniteInARow = nonFiniteInARow, BestValLoss = BestLoss, BestStep = BestStep,
        ValidationsWithoutImprovement = ValidationsWithoutImprovement, RngState = TrainerCheckpoint.CaptureRng(), Config = _o.Resolved(),
    };

    /// <summary>
    /// Takes over a saved or handed-over state after checking it belongs to this run's plan; <paramref name="expectedStep"/>
    /// is where the caller was told the state continues (null: anywhere). Refusals name <paramref name="source"/> and
    /// leave the book as it was. torch's RNG (<see cref="TrainerState.RngState"/>) is the caller's to restore: workers
    /// of one process share it.
    /// </summary>
    public void Restore(TrainerState st, string source, long? expectedStep = null)
    {
        if (expectedStep is { } at && st.NextStep != at)
            throw new TrainerStateMismatchException($"{source} continues at step {st.NextStep}, the run was submitted to continue at {at}");
        if (st.TotalSteps != _plan.TotalSteps)
            throw new TrainerStateMismatchException($"{source} was made for a {st.TotalSteps}-step run, this run has {_plan.TotalSteps} steps (schedule would differ)");
        if (st.NextStep < 0 || st.NextStep > _plan.TotalSteps)
            throw new TrainerStateMismatchException($"{source} continues at step {st.NextStep}, outside this {_plan.TotalSteps}-step run");
        var expect = Enumerable.Range(0, (int)st.NextStep).SelectMany(x => _plan.StepSamples(x));
        if (!expect.SequenceEqual(st.ConsumedSamples))
            throw new TrainerStateMismatchException($"{source}: the consumed samples differ from this run's plan (manifest, split, seed or batch sizes changed)");
        NextStep = st.NextStep; _lastValidated = null; BestLoss = st.BestValLoss; BestStep = st.BestStep;
        ValidationsWithoutImprovement = st.ValidationsWithoutImprovement;
    }

    /// <summary>The state as trainer_state.json holds it (checkpoints and hand-overs alike).</summary>
    public static byte[] Serialize(TrainerState st) => JsonSerializer.SerializeToUtf8Bytes(st, Json);

    public static TrainerState Deserialize(ReadOnlySpan<byte> json, string source)
    {
        try { return JsonSerializer.Deserialize<TrainerState>(json, Json) ?? throw new InvalidDataException($"{source}: empty trainer state"); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: trainer state unreadable: {e.Message}"); }
    }

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>resolved_config.yaml: every key the run was built from, as it was resolved (written by whoever starts the run).</summary>
    public static void WriteResolvedConfig(string outDir, TrainOptions o) =>
        File.WriteAllText(Path.Combine(outDir, "resolved_config.yaml"),
            string.Join("\n", o.Resolved().Select(kv => $"{kv.Key}: \"{kv.Value.Replace("\"", "\\\"")}\"")) + "\n");
}

/// <summary>A trainer state that is readable but belongs to another run's plan (steps, samples or schedule differ).</summary>
public sealed class TrainerStateMismatchException(string message) : IOException(message);
