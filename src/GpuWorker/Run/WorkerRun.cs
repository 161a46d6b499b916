using System.Collections.Immutable;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.GpuWorker.HandOvers;
using HiggsCluster.GpuWorker.Steps;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.GpuWorker.Run;

/// <summary>
/// A worker's run as one immutable value: which run and group it is in (<see cref="GroupFormation"/>), the step in
/// progress (<see cref="WorkerStepState"/>), how many committed steps its state holds (<see cref="Applied"/>), the
/// batches and commits it holds, a hand-over being assembled, and which loaders were asked for batches.
/// <see cref="Handle"/> is pure: the actor sends what it returns and feeds back what the engine answered.
/// </summary>
public sealed record WorkerRun(
    string WorkerId, int Credits, GroupFormation Formation, AllReduceGroup? Group, WorkerStepState Step, long Applied,
    ImmutableDictionary<(long Step, int Micro), BatchDelivery> Batches, ImmutableDictionary<long, double[]> Commits,
    HandOverAssembly? Incoming, ImmutableList<TensorSnapshot> Early, bool HasCommunicator, bool ReducePending,
    ImmutableHashSet<string> Loaders, ImmutableHashSet<string> Demanded)
{
    /// <summary>Chunks of a run this worker does not know yet are kept up to this many (a peer's state overtook the group).</summary>
    public const int EarlyLimit = 4096;

    public static WorkerRun Start(string workerId, int credits) => new(workerId, credits, GroupFormation.None, null,
        WorkerStepState.Idle, 0, ImmutableDictionary<(long, int), BatchDelivery>.Empty, ImmutableDictionary<long, double[]>.Empty,
        null, ImmutableList<TensorSnapshot>.Empty, false, false, ImmutableHashSet.Create<string>(StringComparer.Ordinal),
        ImmutableHashSet.Create<string>(StringComparer.Ordinal));

    public string? RunId => Formation.RunId;
    public int Rank => Formation.Rank;

    public (WorkerRun State, IReadOnlyList<WorkerRunEffect> Effects) Handle(WorkerInput input)
    {
        var fx = new List<WorkerRunEffect>();
        return (On(input, fx), fx);
    }

    private WorkerRun On(WorkerInput input, List<WorkerRunEffect> fx) => input switch
    {
        RegisterTick => Say(fx, new Register(RunId, Applied)),
        LoaderUp l => (this with { Loaders = Loaders.Add(l.Address) }).Demand(fx),
        LoaderGone l => this with { Loaders = Loaders.Remove(l.Address), Demanded = Demanded.Remove(l.Address) },
        CommunicatorReady r when Group is null || r.Generation != Group.Generation => Say(fx, new TakeCommunicator(false)),
        CommunicatorReady { Error: { } e } r => Broken(fx, r.Generation, $"communicator of generation {r.Generation} failed: {e}"),
        CommunicatorReady => (this with { HasCommunicator = true }).ReduceIfPending(fx, new TakeCommunicator(true)),
        NcclIdNotCreated f when f.RunId == RunId && Group is not null && f.Generation == Group.Generation =>
            Fail(fx, f.RunId, Step.GlobalStep, $"rank 0 could not create the NCCL id: {f.Error}"),
        NcclIdNotCreated => this,
        ReduceFinished d when Group is null || d.Generation != Group.Generation => this,
        ReduceFinished { Error: { } e } d => Broken(fx, d.Generation, $"all-reduce of step {d.Step} failed: {e}"),
        ReduceFinished d => Say(fx, new InjectFault(FaultPoint.AfterAllReduce, d.Step)).Feed(new AllReduceFinished(d.Step), fx),
        MicroStepDone m => Feed(new MicroStepFinished(m.Step, m.Micro, m.Loss), fx),
        OptimizerDone o => AppliedThrough(o.Step + 1).Feed(new OptimizerStepped(o.Step), fx),
        StateImported i when i.RunId == RunId => AppliedThrough(i.Step).Say(fx, new Log(Level.Info, $"installed the state of step {i.Step} from a peer"),
            new ToCoordinator(new StateInstalled(i.RunId, WorkerId, i.Step))),
        CheckpointLoaded c when c.RunId == RunId => AppliedThrough(c.Step).Say(fx, new Log(Level.Info, $"loaded {c.Path ?? "the run's initial adapter"} ({c.Step} steps) in {c.Millis} ms"),
            new ToCoordinator(new StateInstalled(c.RunId, WorkerId, c.Step))),
        LoadFailed f => (this with { Incoming = null }).Fail(fx, f.RunId, f.Step, f.Reason),
        Received { Message: var m } => OnMessage(m, fx),
        _ => this,
    };

    private WorkerRun OnMessage(object message, List<WorkerRunEffect> fx)
    {
        switch (message)
        {
            case AllReduceGroup g: return OnGroup(g, fx);
            case StartStep s when Group is not null && s.Generation == Group.Generation && s.RunId == RunId:
                return Feed(new BeginStep(s.Generation, s.Step, s.MicroBatches), fx);
            case StartStep: return this; // of another group: its coordinator will start the step in ours
            case BatchDelivery b when Group is null || b.Generation != Group.Generation || b.RunId != RunId || b.Rank != Rank:
                // planned for another group or rank: release it at the loader, never train on it
                return Say(fx, new Log(Level.Warning, $"released a batch for rank {b.Rank} of generation {b.Generation} (I am rank {Rank} of {Group?.Generation})"),
                    new ToSender(new BatchAck(b.RunId, b.Step, b.Rank, b.Micro, b.Generation)));
            case BatchDelivery b:
                // the credit goes back on receipt, not after the micro-step: a batch held for a later step (look-ahead) must
                // not block one of the current step that a loader re-produced behind it; the coordinator plans at most one
                // step ahead, which bounds what a worker holds
                fx.Add(new ToSender(new BatchAck(b.RunId, b.Step, b.Rank, b.Micro, b.Generation)));
                fx.Add(new ToSender(new BatchDemand(b.RunId, b.Generation, Rank, 1)));
                return (this with { Batches = Batches.SetItem((b.Step, b.Micro), b) }).Feed(new BatchArrived(b.Step, b.Micro), fx);
            case BatchFailed f:
                return Say(fx, new Log(Level.Error, $"run {f.RunId} step {f.Step} micro {f.Micro} could not be built: {f.Reason}"),
                    new ToCoordinator(new WorkerFailed(f.RunId, WorkerId, f.Step, $"micro-batch {f.Micro} of rank {f.Rank} could not be built: {f.Reason}")));
            case StepCommitted c when c.RunId != RunId || c.Step < Applied:
                return this; // another run's, or a step this worker's state holds already (a commit sent again)
            case StepCommitted c:
                return (this with { Commits = Commits.SetItem(c.Step, c.Totals) }).Feed(new Committed(c.Step), fx);
            case HandOverTo m when m.RunId != RunId || Applied != m.Step || Step.Phase != WorkerPhase.Idle:
                return Say(fx, new ToCoordinator(new HandOverNotSent(m.RunId, WorkerId, m.Step,
                    $"worker {WorkerId} holds {Applied} steps of run {RunId ?? "(none)"} and is {Step.Phase}")));
            case HandOverTo m: return Say(fx, new SendState(m));
            case TensorSnapshot chunk: return OnChunk(chunk, fx);
            case RestoreCheckpoint r when r.RunId == RunId:
                // whatever step this worker was in is abandoned; batches held early go too: the steps are planned again
                if (Step.Phase != WorkerPhase.Idle) fx.Add(new DiscardStepGradients());
                fx.Add(new LoadCheckpoint(r));
                return this with
                {
                    Step = WorkerStepState.Idle with { Generation = Step.Generation }, Batches = Batches.Clear(), Commits = Commits.Clear(),
                    Incoming = null,
                };
            default: return this;
        }
    }

    private WorkerRun OnGroup(AllReduceGroup g, List<WorkerRunEffect> fx)
    {
        var (formation, newGroup, formed) = Formation.Handle(g, WorkerId);
        fx.AddRange(formed.Select(f => new Communicator(f)));
        if (!newGroup) return this with { Formation = formation };
        var joined = this with
        {
            Formation = formation, Group = g, Applied = g.RunId == RunId ? Applied : 0,
            Commits = g.RunId == RunId ? Commits : Commits.Clear(), HasCommunicator = false, ReducePending = false,
            Demanded = Demanded.Clear(), Early = ImmutableList<TensorSnapshot>.Empty,
        };
        var s = joined.Feed(new GroupChanged(g.Generation), fx);
        foreach (var chunk in Early.Where(c => c.RunId == g.RunId)) s = s.OnChunk(chunk, fx);
        return s.Demand(fx);
    }

    private WorkerRun OnChunk(TensorSnapshot chunk, List<WorkerRunEffect> fx)
    {
        if (chunk.RunId != RunId) return Early.Count < EarlyLimit ? this with { Early = Early.Add(chunk) } : this;
        if (chunk.Step == Applied && Incoming is null) return this; // a hand-over sent again: this worker installed it already
        try
        {
            var (next, complete) = HandOverAssembly.Add(Incoming, chunk);
            if (complete is null) return this with { Incoming = next };
            if (Step.Phase != WorkerPhase.Idle)
                return (this with { Incoming = null }).Fail(fx, chunk.RunId, chunk.Step,
                    $"handed-over state unusable: state of step {chunk.Step} arrived while step {Step.GlobalStep} is {Step.Phase}");
            fx.Add(new ImportState(chunk.RunId, chunk.Step, complete));
            return this with { Incoming = null };
        }
        catch (InvalidDataException e)
        {
            return (this with { Incoming = null }).Fail(fx, chunk.RunId, chunk.Step, $"handed-over state unusable: {e.Message}");
        }
    }

    /// <summary>Asks every loader not yet asked in this group for batches (credits), once this worker has a rank.</summary>
    private WorkerRun Demand(List<WorkerRunEffect> fx)
    {
        if (RunId is not { } run || Group is null || Rank < 0) return this;
        var fresh = Loaders.Except(Demanded).Order(StringComparer.Ordinal).ToList();
        foreach (var l in fresh) fx.Add(new ToLoader(l, new BatchDemand(run, Group.Generation, Rank, Credits)));
        return this with { Demanded = Demanded.Union(fresh) };
    }

    private WorkerRun ReduceIfPending(List<WorkerRunEffect> fx, WorkerRunEffect first)
    {
        fx.Add(first);
        if (!ReducePending) return this;
        fx.Add(new StartAllReduce(Group!.Generation, Step.GlobalStep));
        return this with { ReducePending = false };
    }

    /// <summary>Runs the step machine, turning its effects into the engine and communicator calls they stand for.</summary>
    private WorkerRun Feed(WorkerCommand cmd, List<WorkerRunEffect> fx)
    {
        var (step, effects) = Step.Handle(cmd);
        var s = this with { Step = step };
        foreach (var e in effects)
            switch (e)
            {
                case RunMicroStep m: fx.Add(new RunMicro(s.Batches[(m.GlobalStep, m.Micro)], s.Group!.Peers.Length)); break;
                case AckBatch a: s = s with { Batches = s.Batches.Remove((a.GlobalStep, a.Micro)) }; break;
                case DropBatch d: s = s with { Batches = s.Batches.Remove((d.GlobalStep, d.Micro)) }; break;
                case AllReduceGradients r when s.HasCommunicator: fx.Add(new StartAllReduce(s.Group!.Generation, r.GlobalStep)); break;
                case AllReduceGradients: s = s with { ReducePending = true }; break;
                case StepOptimizer o when s.Commits.TryGetValue(o.GlobalStep, out var totals):
                    fx.Add(new RunOptimizer(o.GlobalStep, totals, Lead: s.Rank == 0));
                    break;
                case StepOptimizer o: return s.Fail(fx, RunId!, o.GlobalStep, $"step {o.GlobalStep} committed without totals");
                case ReportStep r: fx.Add(new ReportStepDone(RunId!, r.Generation, r.GlobalStep, s.Rank)); break;
                case DiscardGradients: fx.Add(new DiscardStepGradients()); break;
                case WorkerProtocolError p: fx.Add(new Log(Level.Warning, p.Reason)); break;
            }
        return s;
    }

    /// <summary>This worker's state holds the first <paramref name="steps"/> committed steps; commits of those are spent.</summary>
    private WorkerRun AppliedThrough(long steps) =>
        this with { Applied = steps, Commits = Commits.RemoveRange(Commits.Keys.Where(k => k < steps)) };

    /// <summary>The group cannot reduce any more (a peer hangs or left): the coordinator forms it again under a new generation.</summary>
    private WorkerRun Broken(List<WorkerRunEffect> fx, long generation, string reason) =>
        Say(fx, new Log(Level.Warning, $"{reason}; asking the coordinator to form the group again"),
            new ToCoordinator(new GroupBroken(RunId!, WorkerId, generation, reason)));

    private WorkerRun Fail(List<WorkerRunEffect> fx, string runId, long step, string reason) =>
        Say(fx, new Log(Level.Error, $"step {step}: {reason}"), new ToCoordinator(new WorkerFailed(runId, WorkerId, step, reason)));

    private WorkerRun Say(List<WorkerRunEffect> fx, params WorkerRunEffect[] effects)
    {
        fx.AddRange(effects);
        return this;
    }
}
