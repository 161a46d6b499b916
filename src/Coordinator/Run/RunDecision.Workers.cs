using System.Collections.Immutable;
using HiggsCluster.Messages;
using static HiggsCluster.Coordinator.Run.ViewEvents;

namespace HiggsCluster.Coordinator.Run;

/// <summary>Who holds the committed state: hand-overs to newcomers, roll-backs, and resuming after a fail-over.</summary>
internal sealed partial class RunDecision
{
    private string[] Stale() => V.Members.Where(w => !V.Synced.Contains(w)).ToArray();

    /// <summary>
    /// Members that joined after the last commit get the committed state from a member holding it before any step
    /// starts (a fresh process would otherwise train from the initial adapter). False when the group is ready.
    /// </summary>
    private bool HandOverFirst()
    {
        var stale = Stale();
        if (stale.Length == 0) return false;
        long g = Step;
        if (V.HandOver is { } h && h.Generation == V.Generation && h.GlobalStep == g)
        {
            Emit(new Idle($"waiting for {string.Join(", ", stale)} to install the state of step {g}"));
            return true;
        }
        if (NoLead()) return true;
        var t = new HandOverEffect(V.Generation, g, S.Lead!, stale);
        Emit(new HandOverAsked(t, $"handing the state of step {g} from {t.From} to {string.Join(", ", stale)}"));
        return true;
    }

    private void OnProgress(string worker, long applied)
    {
        if (applied != Step || !V.Members.Contains(worker) || V.Synced.Contains(worker)) return;
        Emit(new WorkerSynced(worker));
        if (V.Restoring is { } r)
        {
            if (Stale().Length > 0) return;
            // as after the checkpoint was written: the validation due at its step comes next (the bookkeeping predates it)
            Emit(new Restored($"every worker holds the checkpoint of step {r.GlobalStep}"));
            if (S.Phase == RunPhase.Training && V.InFlight is null) ValidateOrContinue();
            return;
        }
        if (V.AwaitProgress)
        {
            // the first worker known to hold the state after a take-over: the run can go on (others get it handed over)
            Emit(new AwaitingProgress(false));
            if (V.Resuming) Resume();
            else if (S.Phase == RunPhase.Training && V.InFlight is null && !V.Members.IsEmpty) ValidateOrNextStep();
            return;
        }
        if (V.HandOver is null || Stale().Length > 0) return;
        Emit(new HandOverOver($"state of step {Step} installed on every worker"));
        if (S.Phase == RunPhase.Training && V.InFlight is null) NextStep();
    }

    private void WaitOver()
    {
        if (V.ResumeWorld != 0) Emit(new ResumeWaitEnded());
        bool adopted = V.AwaitProgress && !V.Members.IsEmpty && S.Lead is null;
        if (adopted) NobodyHoldsTheState();
        if (V.Restoring is not null) return;
        if (V.Resuming) Resume();
        else if (adopted && S.Phase == RunPhase.Training && V.InFlight is null) ValidateOrNextStep();
    }

    /// <summary>
    /// No worker that applied the last commit came back after a take-over (the whole cluster restarted), so nothing
    /// holds the committed state in memory. Before this cluster's first commit every worker holds the start state (the
    /// initial adapter, or the checkpoint the run resumed from): the run goes on. After it, training the members on
    /// would silently restart from the wrong state: the run rolls back to its last checkpoint (or its start) instead,
    /// every member loads it, and the steps after it are trained again from the same plan.
    /// </summary>
    private void NobodyHoldsTheState()
    {
        long g = Step;
        if (g <= Spec.StartStep)
        {
            Emit(new StartStateHeld(V.Members.ToImmutableHashSet(), $"no worker that held step {g} came back: every worker holds the run's start state"));
            return;
        }
        var mark = D.LastCheckpoint is { } c && c.Step >= Spec.StartStep ? c
            : new CheckpointMark(Spec.StartStep, Spec.ResumeFrom, Spec.ResumeBestLoss, Spec.ResumeValidationsWithoutImprovement, Spec.ResumeBestStep);
        var restore = new RestoreEffect(V.Generation, mark.Step, mark.Path, V.Members.ToArray(), RollBack: true);
        Emit(new RunEvents.RolledBack(Id, mark.Step, mark.Path, mark.BestLoss, mark.ValidationsWithoutImprovement));
        Emit(new RollBackStarted(restore, $"no worker holding step {g} came back (the whole cluster was lost): rolled back to " +
            (mark.Path is null ? "the run's start" : $"the checkpoint of step {mark.Step} ({mark.Path})")));
    }

    /// <summary>
    /// A hand-over that did not complete (its chunks lost in transit, or a newcomer that never answered) is asked for again
    /// from a member holding the state, for the members still without it; installing the same state twice is harmless.
    /// </summary>
    private void HandOverAgain()
    {
        var stale = Stale();
        if (stale.Length == 0) { Emit(new HandOverOver(null)); return; }
        if (NoLead()) return;
        var t = new HandOverEffect(V.Generation, Step, S.Lead!, stale);
        Emit(new HandOverAskedAgain(t, $"handing the state of step {t.GlobalStep} from {t.From} to {string.Join(", ", stale)} again (the last hand-over did not complete)"));
    }

    private void OnHandOverFailed(HandOverRefused f)
    {
        if (V.HandOver is null || V.HandOver.From != f.WorkerId || f.GlobalStep != Step) return;
        // the source does not hold the state it was thought to (or not yet: after a take-over a worker may still be
        // finishing the commit sent again): pick another; when none is left, wait for a worker to register holding it
        Emit(new HandOverFailed(f.WorkerId, $"state hand-over from {f.WorkerId} failed: {f.Reason}"));
        if (S.Lead is null) Emit(new AwaitingProgress(true));
        if (S.Phase == RunPhase.Training && V.InFlight is null) NextStep();
    }

    /// <summary>After a take-over: once the group is back, what was in progress is asked for again, or the next step runs.</summary>
    private void Resume()
    {
        long g = Step;
        if (V.World == 0 || V.World < V.ResumeWorld)
        {
            Emit(new Noted($"recovered at step {g}: waiting for workers ({V.World} of {Math.Max(1, V.ResumeWorld)})"));
            return;
        }
        // a checkpoint or validation written from a state nobody vouched for would be wrong: wait for a holder (or the wait's end)
        if (V.AwaitProgress && !V.Members.IsEmpty && S.Lead is null)
        {
            Emit(new Noted($"recovered at step {g}: waiting for a worker holding it to register"));
            return;
        }
        Emit(new Resumed());
        switch (D.Phase)
        {
            case RunPhase.Checkpointing:
                CheckpointAgain();
                Emit(new Noted($"checkpointing step {g} again after a fail-over"));
                return;
            case RunPhase.Validating:
                ValidateAgain();
                Emit(new Noted($"validating step {g} again after a fail-over"));
                return;
            default:
                ValidateOrNextStep();
                return;
        }
    }
}
