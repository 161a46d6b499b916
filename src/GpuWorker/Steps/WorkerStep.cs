using System.Collections.Immutable;

namespace HiggsCluster.GpuWorker.Steps;

public enum WorkerPhase { Idle, MicroSteps, AllReducing, AwaitingCommit, Optimizing }

public abstract record WorkerCommand;
public sealed record BeginStep(long Generation, long GlobalStep, int MicroBatches) : WorkerCommand;
public sealed record BatchArrived(long GlobalStep, int Micro) : WorkerCommand;
public sealed record MicroStepFinished(long GlobalStep, int Micro, double Loss) : WorkerCommand;
public sealed record AllReduceFinished(long GlobalStep) : WorkerCommand;
/// <summary>The coordinator committed the step (every rank reduced it): only now may the optimizer step.</summary>
public sealed record Committed(long GlobalStep) : WorkerCommand;
public sealed record OptimizerStepped(long GlobalStep) : WorkerCommand;
public sealed record GroupChanged(long Generation) : WorkerCommand;

public abstract record WorkerEffect;
public sealed record RunMicroStep(long GlobalStep, int Micro) : WorkerEffect;
public sealed record AckBatch(long GlobalStep, int Micro) : WorkerEffect;
public sealed record DropBatch(long GlobalStep, int Micro) : WorkerEffect;
public sealed record AllReduceGradients(long GlobalStep) : WorkerEffect;
public sealed record StepOptimizer(long GlobalStep) : WorkerEffect;
/// <summary>Tell the coordinator the step's gradients are reduced (with the checksum of the parameters it started from).</summary>
public sealed record ReportStep(long Generation, long GlobalStep, double Loss) : WorkerEffect;
/// <summary>Gradients accumulated for an abandoned step must not leak into the next one.</summary>
public sealed record DiscardGradients(long GlobalStep) : WorkerEffect;
public sealed record WorkerProtocolError(string Reason) : WorkerEffect;

/// <summary>
/// One rank's step: micro-steps run strictly in micro order (batches may arrive in any order and wait), one at a time;
/// then one all-reduce and a report; the optimizer steps only when the coordinator commits the step (two-phase, so an
/// abandoned step never leaves some ranks stepped and others not). Batches of a later step (the loader may be faster than the
/// coordinator's start message) are held in <see cref="Early"/>; batches of past steps are released. A group change
/// abandons the step, discards its gradients and releases everything held, except when the rank is waiting for the
/// commit: then the reduced gradients stay until the commit arrives (re-sent after a coordinator fail-over) or the
/// same step starts again (it was not committed).
/// </summary>
public sealed record WorkerStepState(
    WorkerPhase Phase, long Generation, long GlobalStep, int MicroBatches, int NextMicro, bool Computing,
    ImmutableSortedSet<int> Waiting, double LossSum, ImmutableSortedSet<(long Step, int Micro)> Early)
{
    /// <summary>The group in which this rank reduced the step it awaits the commit of (-1: none).</summary>
    public long ReducedIn { get; init; } = -1;

    public static WorkerStepState Idle { get; } = new(WorkerPhase.Idle, -1, -1, 0, 0, false, ImmutableSortedSet<int>.Empty, 0,
        ImmutableSortedSet<(long, int)>.Empty);

    public (WorkerStepState State, IReadOnlyList<WorkerEffect> Effects) Handle(WorkerCommand cmd)
    {
        var fx = new List<WorkerEffect>();
        WorkerStepState s = this;
        switch (cmd)
        {
            case GroupChanged g when Phase == WorkerPhase.AwaitingCommit:
                // the step may have been committed by a coordinator that died before this rank heard of it: keep the
                // reduced gradients; the new group's coordinator re-sends the commit, or starts the step again
                foreach (var e in Early) fx.Add(new DropBatch(e.Step, e.Micro));
                s = this with { Generation = g.Generation, Early = ImmutableSortedSet<(long, int)>.Empty };
                break;
            case GroupChanged g:
                if (Phase != WorkerPhase.Idle) fx.Add(new DiscardGradients(GlobalStep));
                foreach (var m in Waiting) fx.Add(new DropBatch(GlobalStep, m));
                foreach (var e in Early) fx.Add(new DropBatch(e.Step, e.Micro));
                s = Idle with { Generation = g.Generation };
                break;
            case BeginStep b when Phase == WorkerPhase.AwaitingCommit && b.GlobalStep == GlobalStep && b.Generation == Generation:
                {
                    // the step kept across a group change was not committed after all: it runs again from scratch
                    fx.Add(new DiscardGradients(GlobalStep));
                    var (again, more) = (Idle with { Generation = Generation, Early = Early }).Handle(b);
                    fx.AddRange(more);
                    s = again;
                    break;
                }
            case BeginStep b when Phase != WorkerPhase.Idle:
                fx.Add(new WorkerProtocolError($"step {b.GlobalStep} started while step {GlobalStep} is {Phase}"));
                break;
            case BeginStep b when b.Generation < Generation:
                break; // a start from an older group
            case BeginStep b:
                {
                    foreach (var e in Early.Where(e => e.Step < b.GlobalStep)) fx.Add(new DropBatch(e.Step, e.Micro));
                    var mine = Early.Where(e => e.Step == b.GlobalStep).Select(e => e.Micro).ToImmutableSortedSet();
                    s = new WorkerStepState(WorkerPhase.MicroSteps, b.Generation, b.GlobalStep, b.MicroBatches, 0, false, mine, 0,
                        Early.Where(e => e.Step > b.GlobalStep).ToImmutableSortedSet());
                    break;
                }
            case BatchArrived a when a.GlobalStep > GlobalStep:
                if (Early.Contains((a.GlobalStep, a.Micro))) fx.Add(new WorkerProtocolError($"batch {a.Micro} of step {a.GlobalStep} arrived twice"));
                else s = this with { Early = Early.Add((a.GlobalStep, a.Micro)) };
                break;
            case BatchArrived a when Phase == WorkerPhase.AwaitingCommit && a.GlobalStep == GlobalStep && Generation != ReducedIn:
                // the group changed after this rank reduced the step: the new group runs the step again, and its batch
                // may overtake the start; released now, it would never come back and the step would wait forever
                if (Early.Contains((a.GlobalStep, a.Micro))) fx.Add(new WorkerProtocolError($"batch {a.Micro} of step {a.GlobalStep} arrived twice"));
                else s = this with { Early = Early.Add((a.GlobalStep, a.Micro)) };
                break;
            case BatchArrived a when Phase != WorkerPhase.MicroSteps || a.GlobalStep != GlobalStep:
                fx.Add(new DropBatch(a.GlobalStep, a.Micro)); // a past step: release the loader's window anyway
                break;
            case BatchArrived a:
                if (a.Micro < NextMicro || a.Micro >= MicroBatches || Waiting.Contains(a.Micro) || (Computing && a.Micro == NextMicro - 1))
                    fx.Add(new WorkerProtocolError($"unexpected batch {a.Micro} of step {a.GlobalStep}"));
                else s = this with { Waiting = Waiting.Add(a.Micro) };
                break;
            case MicroStepFinished f when Phase == WorkerPhase.MicroSteps && Computing && f.GlobalStep == GlobalStep && f.Micro == NextMicro - 1:
                fx.Add(new AckBatch(f.GlobalStep, f.Micro));
                s = this with { Computing = false, LossSum = LossSum + f.Loss };
                break;
            case AllReduceFinished r when Phase == WorkerPhase.AllReducing && r.GlobalStep == GlobalStep:
                fx.Add(new ReportStep(Generation, GlobalStep, MicroBatches == 0 ? 0 : LossSum / MicroBatches));
                s = this with { Phase = WorkerPhase.AwaitingCommit, ReducedIn = Generation };
                break;
            case Committed c when Phase == WorkerPhase.AwaitingCommit && c.GlobalStep == GlobalStep:
                fx.Add(new StepOptimizer(GlobalStep));
                s = this with { Phase = WorkerPhase.Optimizing };
                break;
            case Committed:
                break; // a commit this rank took no part in (it joined later)
            case OptimizerStepped o when Phase == WorkerPhase.Optimizing && o.GlobalStep == GlobalStep:
                s = Idle with { Generation = Generation, GlobalStep = GlobalStep, Early = Early };
                break;
            default:
                fx.Add(new WorkerProtocolError($"{cmd} does not fit phase {Phase} of step {GlobalStep}"));
                break;
        }
        return (s.Advance(fx), fx);
    }

    private WorkerStepState Advance(List<WorkerEffect> fx)
    {
        if (Phase != WorkerPhase.MicroSteps || Computing) return this;
        if (NextMicro < MicroBatches)
        {
            if (!Waiting.Contains(NextMicro)) return this;
            fx.Add(new RunMicroStep(GlobalStep, NextMicro));
            return this with { Waiting = Waiting.Remove(NextMicro), NextMicro = NextMicro + 1, Computing = true };
        }
        // every micro-step done (or this rank had none in a short last step): it still joins the collective
        fx.Add(new AllReduceGradients(GlobalStep));
        return this with { Phase = WorkerPhase.AllReducing };
    }
}
