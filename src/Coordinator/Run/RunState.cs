using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// One run as the coordinator holds it: the durable part (<see cref="Run"/>, what the journal rebuilds) and the view of
/// the cluster (<see cref="View"/>, learnt again after a fail-over). Changed only by <see cref="Evolve"/>: a journalled
/// event changes only the durable part, a view event only the view. The getters below read either part.
/// </summary>
public sealed record RunState(RunDurable Run, RunView View)
{
    public static RunState Submit(RunSpec spec)
    {
        string Bad(string what) => $"run {spec.RunId}: {what}";
        if (string.IsNullOrWhiteSpace(spec.RunId)) throw new ArgumentException("run id is empty");
        if (spec.Epochs <= 0 && spec.MaxSteps <= 0) throw new ArgumentException(Bad($"epochs must be positive (or max steps set), got {spec.Epochs}"));
        if (spec.Ranks <= 0 || spec.MicroBatchSize <= 0 || spec.GradAccumulation <= 0) throw new ArgumentException(Bad("ranks, micro-batch size and accumulation must be positive"));
        if (spec.SaveSteps < 0 || spec.ValSteps < 0) throw new ArgumentException(Bad("save_steps/val_steps must be >= 0"));
        if (spec.StartWorkers <= 0) throw new ArgumentException(Bad($"start workers must be positive, got {spec.StartWorkers}"));
        return new RunState(RunDurable.Start(spec), RunView.Start(spec));
    }

    public RunState Evolve(IRunEvent e) => e switch
    {
        RunEvent d => this with { Run = Run.Evolve(d) },
        ViewEvent v => this with { View = View.Evolve(v) },
        _ => throw new ArgumentException($"unknown run event {e.GetType().Name}"),
    };

    /// <summary>The state the journalled events of one run lead to (the first must be <see cref="RunEvents.Submitted"/>).</summary>
    public static RunState Replay(IEnumerable<RunEvent> events)
    {
        RunDurable? run = null;
        foreach (var e in events)
            run = e is RunEvents.Submitted sub ? RunDurable.Start(sub.Spec)
                : (run ?? throw new InvalidDataException($"run {e.RunId}: {e.GetType().Name} journalled before the run was submitted")).Evolve(e);
        return run is null ? throw new InvalidDataException("no events to replay") : new RunState(run, RunView.Start(run.Spec));
    }

    /// <summary>
    /// The replayed state as a new coordinator takes it over: nobody is known to be in the cluster yet, shards are
    /// assigned again; what was in progress (a checkpoint, a validation) is asked for again and a step in flight is run
    /// again (it was not committed, so no worker applied it) once the group is back.
    /// </summary>
    public RunState Recovered() => IsTerminal ? this : this with { View = RunView.Recovered(Run) };

    public RunSpec Spec => Run.Spec;
    /// <summary>Preparing is the view's: shard reports are not journalled, so a successor prepares again.</summary>
    public RunPhase Phase => Run.Phase == RunPhase.Submitted && View.Preparing ? RunPhase.Preparing : Run.Phase;
    public bool IsTerminal => Run.IsTerminal;
    public string Detail => Run.EndReason ?? View.Detail;
    public SamplePlan? Plan => Run.Plan;
    public SampleCursor Cursor => Run.Cursor;
    public ImmutableArray<long> ValidationIds => Run.ValidationIds;
    public ImmutableArray<string> Problems => Run.Problems;
    public ImmutableArray<double> LastTotals => Run.LastTotals;
    public bool ValidationWanted => Run.ValidationWanted;
    public bool Finishing => Run.Finishing;
    public bool EarlyStopped => Run.EarlyStopped;
    public double? BestValidationLoss => Run.BestValidationLoss;
    public int ValidationsWithoutImprovement => Run.ValidationsWithoutImprovement;
    public long? BestValidationStep => Run.BestValidationStep;
    public CheckpointMark? LastCheckpoint => Run.LastCheckpoint;
    public ShardTable Shards => View.Shards;
    public long Generation => View.Generation;
    public int World => View.World;
    public StartStepEffect? InFlight => View.InFlight;
    public ImmutableArray<string> Members => View.Members;
    public ImmutableHashSet<string> Synced => View.Synced;
    public HandOverEffect? HandOver => View.HandOver;
    public RestoreEffect? Restoring => View.Restoring;
    public bool AwaitProgress => View.AwaitProgress;
    public bool Resuming => View.Resuming;
    public int ResumeWorld => View.ResumeWorld;
    public (long Generation, long Step) PlannedThrough => View.PlannedThrough;

    /// <summary>The worker that checkpoints and validates: the first member holding the committed state.</summary>
    public string? Lead => View.Members.FirstOrDefault(View.Synced.Contains);
    public int Epoch => Plan is null ? 0 : Plan.EpochOf(Math.Max(0, Cursor.GlobalStep - (Cursor.Finished(Plan) ? 1 : 0)));
}
