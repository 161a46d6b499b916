using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using HiggsCluster.Coordinator.Groups;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Actors;

/// <summary>Registry key of the coordinator singleton (or its proxy on nodes without the coordinator role).</summary>
public sealed class CoordinatorKey;

/// <summary>
/// Thin shell around <see cref="RunMachine"/>: turns cluster membership and worker registrations into
/// <see cref="MembershipChanged"/>, feeds protocol messages to the run machine and sends its effects out.
/// Loaders are members with the loader role (addressed at /user/data-loader); workers register themselves.
/// Event-sourced: the durable events a command decides are journalled before its effects go out, so a commit no
/// worker has seen may be lost with a dead coordinator but a commit a worker applied never is. A successor (the
/// singleton on another coordinator node) folds the journal with the same <see cref="RunMachine.Evolve"/> and resumes
/// every run that had not ended.
/// </summary>
public sealed partial class CoordinatorActor : ReceivePersistentActor, IWithTimers
{
    public const string LoaderPath = "/user/data-loader";
    public const string JournalId = "higgs-coordinator";

    private sealed record ResumeWaitExpired;
    private sealed record HandOverDue(string RunId, long Generation, long Step);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, RunState> _runs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RunPlanned> _planned = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double[]> _lastStats = new(StringComparer.Ordinal);
    private LoaderMembership _loaders = LoaderMembership.Empty;
    private readonly RingKeys _ringKeys = RingKeys.Create(); // this incarnation's: a successor's keys differ
    private WorkerRoster<IActorRef> _roster = WorkerRoster<IActorRef>.Empty;
    private readonly TimeSpan _resumeWait;
    private readonly TimeSpan _handOverTimeout;
    // per run: the backend of the group its workers hold and, for NCCL, the id rank 0 reported (not journalled)
    private readonly Dictionary<string, NcclIdHandout> _handouts = new(StringComparer.Ordinal);
    private readonly HashSet<string> _backendNotes = new(StringComparer.Ordinal);

    public override string PersistenceId => JournalId;
    public ITimerScheduler Timers { get; set; } = null!;

    public CoordinatorActor(TimeSpan resumeWait, TimeSpan? handOverTimeout = null)
    {
        _resumeWait = resumeWait;
        _handOverTimeout = handOverTimeout ?? TimeSpan.FromSeconds(60);
        Recover<RunEvents.Submitted>(e => _runs[e.RunId] = RunState.Submit(e.Spec));
        Recover<RunEvent>(e =>
        {
            if (_runs.TryGetValue(e.RunId, out var s)) _runs[e.RunId] = RunMachine.Evolve(s, e);
            else _log.Warning("journal: {0} of unknown run {1} skipped", e.GetType().Name, e.RunId);
        });
        Recover<WorkerGroupFormed>(e => _roster = _roster.Recovered(e.Generation));
        Recover<RecoveryCompleted>(_ => OnRecovered());

        Command<ResumeWaitExpired>(_ =>
        {
            foreach (var id in _runs.Where(r => r.Value.Resuming || r.Value.AwaitProgress).Select(r => r.Key).ToList()) Apply(id, new ResumeWaitOver());
        });
        Command<HandOverDue>(d => Apply(d.RunId, new HandOverOverdue(d.Generation, d.Step)));
        Command<SubmitRun>(OnSubmit);
        ReceiveCommandQueries();
        Command<GetRunStatus>(q => Sender.Tell(_runs.TryGetValue(q.RunId, out var r)
            ? new RunStatus(q.RunId, r.Phase, r.Epoch, r.Cursor.GlobalStep, r.Plan?.TotalSteps ?? 0, r.Detail, _lastStats.GetValueOrDefault(q.RunId, Array.Empty<double>()))
            : new RunStatus(q.RunId, RunPhase.Failed, 0, 0, 0, "unknown run", Array.Empty<double>())));
        Command<GetRunLedger>(q => Sender.Tell(_runs.TryGetValue(q.RunId, out var r)
            ? new RunLedger(q.RunId, r.Plan?.Ids.ToArray() ?? Array.Empty<long>(), r.Plan?.TotalSteps ?? 0,
                r.Cursor.Ledger.Select(e => new LedgerEntry(e.GlobalStep, e.Epoch, e.Generation, e.World, e.SampleIds)).ToArray())
            {
                ValidationIds = r.ValidationIds.ToArray(), Problems = r.Problems.ToArray(), EarlyStopped = r.EarlyStopped,
            }
            : new RunLedger(q.RunId, Array.Empty<long>(), 0, Array.Empty<LedgerEntry>())));
        Command<WorkerFailed>(m => Apply(m.RunId, new FailRun($"worker {m.WorkerId} at step {m.Step}: {m.Reason}")));
        Command<ShardsPrepared>(m => Apply(m.RunId, new ShardsReported(m.ShardIds, m.ParsedIds, m.UsableIds, m.Problems)));
        Command<StopRun>(m => Apply(m.RunId, new StopRequested(m.Checkpoint)));
        Command<RequestCheckpoint>(m => Apply(m.RunId, new CheckpointRequested(m.Tag)));
        Command<RequestValidation>(m => Apply(m.RunId, new ValidationRequested()));
        Command<CheckpointDone>(m => Apply(m.RunId, new CheckpointFinished(m.Step, m.Path)));
        Command<ValidationDone>(m => Apply(m.RunId, new ValidationFinished(m.Step, m.Loss)));
        Command<StepDone>(m => Apply(m.RunId, new StepReported(m.Generation, m.Step, m.Rank, m.Stats, m.LoraChecksum)));
        Command<RegisterWorker>(m =>
        {
            _roster = _roster.Register(WorkerKey(Sender), m, Sender);
            Context.Watch(Sender);
            // the progress counts only once the worker is a member: after the regroup it may cause has been journalled
            RegroupAndBroadcast(then: () =>
            {
                if (m.RunId is not null && _runs.ContainsKey(m.RunId)) Apply(m.RunId, new WorkerProgress(m.WorkerId, m.AppliedSteps));
            });
        });
        Command<NcclIdCreated>(OnNcclIdCreated);
        Command<StateInstalled>(m => Apply(m.RunId, new WorkerInstalled(m.WorkerId, m.Step)));
        Command<HandOverNotSent>(m => Apply(m.RunId, new HandOverRefused(m.WorkerId, m.Step, m.Reason)));
        Command<GroupBroken>(m =>
        {
            if (!_roster.MustReform(m.Generation)) return; // another member reported it first
            _log.Warning("run {0}: worker {1} reports generation {2} broken ({3}); forming the group again", m.RunId, m.WorkerId, m.Generation, m.Reason);
            RegroupAndBroadcast(force: true);
        });
        Command<Terminated>(t =>
        {
            if (_roster.Without(WorkerKey(t.ActorRef)) is { } left) { _roster = left; RegroupAndBroadcast(); }
        });
        // which loaders are planned on is decided by LoaderMembership (an unreachable one is dropped at once, a reachable one is back)
        Command<ClusterEvent.MemberUp>(e => OnSeen(new MemberSeen.Up(e.Member.Address.ToString(), e.Member.HasRole("loader"))));
        Command<ClusterEvent.MemberRemoved>(e => OnGone(e.Member, new MemberSeen.Removed(e.Member.Address.ToString())));
        // a downed member never comes back, but a dead one that nobody has yet found unreachable is removed only after the
        // failure detector's pause: a worker restarted on its port gets the old incarnation downed at once (the rejoin
        // gate), so the survivors need not wait for that pause to go on without it
        Command<ClusterEvent.MemberDowned>(e => OnGone(e.Member, new MemberSeen.Removed(e.Member.Address.ToString())));
        Command<ClusterEvent.UnreachableMember>(e => OnGone(e.Member, new MemberSeen.Unreachable(e.Member.Address.ToString())));
        Command<ClusterEvent.ReachableMember>(e => OnSeen(new MemberSeen.Reachable(e.Member.Address.ToString(),
            e.Member.HasRole("loader") && e.Member.Status == MemberStatus.Up)));
        Command<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    protected override void PreStart() =>
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    /// <summary>Runs that had not ended go on from the journal; whoever is in the cluster is learnt again.</summary>
    private void OnRecovered()
    {
        foreach (var (id, run) in _runs.Where(r => !r.Value.IsTerminal).ToList())
        {
            var r = run.Recovered();
            _runs[id] = r;
            if (r.Plan is not null) _planned[id] = new RunPlanned(r.Spec, r.Plan.Ids.ToArray(), r.ValidationIds.ToArray());
            if (r.LastTotals.Length > 0) _lastStats[id] = r.LastTotals.ToArray();
            _log.Warning("coordinator recovered run {0} at step {1} ({2}); workers of generation > {3} resume it", id, r.Cursor.GlobalStep, r.Phase, _roster.Generation);
        }
        if (_runs.Values.Any(r => r.Resuming || r.AwaitProgress)) Timers.StartSingleTimer("resume-wait", new ResumeWaitExpired(), _resumeWait);
    }

    private void OnSubmit(SubmitRun m)
    {
        // run ids name one run for good: its ledger and outputs stay queryable after it ended
        if (_runs.TryGetValue(m.Spec.RunId, out var existing))
        {
            Sender.Tell(new RunRejected(m.Spec.RunId, $"run {m.Spec.RunId} already exists ({existing.Phase}); submit under a new id"));
            return;
        }
        RunState run;
        try { run = RunState.Submit(m.Spec); }
        catch (ArgumentException e) { Sender.Tell(new RunRejected(m.Spec.RunId, e.Message)); return; }
        var sender = Sender;
        Persist(new RunEvents.Submitted(m.Spec), _ =>
        {
            _runs[m.Spec.RunId] = run;
            sender.Tell(new RunAccepted(m.Spec.RunId));
            SendGroup(m.Spec.RunId, plan: false);
            _log.Info("run {0} accepted ({1} ranks × {2} × {3} samples per step)", m.Spec.RunId, m.Spec.Ranks, m.Spec.GradAccumulation, m.Spec.MicroBatchSize);
            Apply(m.Spec.RunId, Membership());
        });
    }

    private void OnSeen(MemberSeen e)
    {
        (_loaders, bool changed) = _loaders.Evolve(e);
        if (changed) Broadcast();
    }

    private void OnGone(Member m, MemberSeen e)
    {
        (_loaders, bool changed) = _loaders.Evolve(e);
        if (_roster.WithoutNode(m.Address.ToString()) is { } left) { _roster = left; changed = true; }
        if (changed) RegroupAndBroadcast();
    }

    /// <summary>Several workers may live in one node (in-process mode), so a worker is its full actor path.</summary>
    private string WorkerKey(IActorRef r) => r.Path.ToStringWithAddress(Cluster.Get(Context.System).SelfAddress);

    private MembershipChanged Membership() => new(_loaders.LoadersUp.ToArray(), _roster.Generation, _roster.Group.Length, _roster.Members);

    private IActorRef? WorkerFor(string? workerId) => _roster.WorkerFor(workerId);

    private void StartHandOver(string runId, HandOverEffect t)
    {
        var from = WorkerFor(t.From);
        // a worker's key is its full actor path, which is what a peer needs to reach it
        var to = _roster.Named(t.To).Select(w => w.Key).ToArray();
        _log.Info("run {0}: {1} hands the state of step {2} to {3}", runId, t.From, t.GlobalStep, string.Join(", ", t.To));
        from?.Tell(new HandOverTo(runId, t.Generation, t.GlobalStep, to));
        Timers.StartSingleTimer("hand-over-" + runId, new HandOverDue(runId, t.Generation, t.GlobalStep), _handOverTimeout);
    }

    private void RegroupAndBroadcast(Action? then = null, bool force = false)
    {
        if (!force && !_roster.NeedsRegroup) { Broadcast(); then?.Invoke(); return; }
        // journalled first: a successor must hand out newer generations than any worker or loader has seen
        // (commands are stashed until it is written, so the roster is still the one proposed)
        Persist(new WorkerGroupFormed(_roster.Generation + 1), e =>
        {
            _roster = _roster.Formed(e.Generation);
            foreach (var run in _runs.Where(r => !r.Value.IsTerminal).Select(r => r.Key)) SendGroup(run, plan: true);
            Broadcast();
            then?.Invoke();
        });
    }

    /// <summary>
    /// The current group to every worker, with the backend chosen for the run. An NCCL group goes out without an id:
    /// rank 0 creates one and the coordinator sends the group again with it (<see cref="OnNcclIdCreated"/>).
    /// </summary>
    private void SendGroup(string run, bool plan)
    {
        var device = _runs[run].Spec.Options.Device;
        var choice = _roster.Backend(device);
        long generation = _roster.Generation;
        _handouts[run] = new NcclIdHandout(generation, choice.Backend, null);
        // said once per run and reason: a mixed group is correct, only slower, and regroups happen often
        if (BackendChoice.IsCudaDevice(device) && _backendNotes.Add($"{run}\n{choice.Backend}\n{choice.Reason}"))
            _log.Info("run {0} generation {1}: {2} all-reduce ({3})", run, generation, choice.Backend, choice.Reason);
        var group = new AllReduceGroup(run, generation, _roster.Group.ToArray(), null) { Backend = choice.Backend, Device = device ?? "cpu", RingKey = _ringKeys.For(run, generation) };
        foreach (var w in _roster.ByRank)
        {
            // a worker must know the run's plan before its group can start a step
            if (plan && _planned.TryGetValue(run, out var p)) w.Tell(p);
            w.Tell(group);
        }
    }

    private void OnNcclIdCreated(NcclIdCreated m)
    {
        var outcome = NcclIdHandout.Accept(_handouts.GetValueOrDefault(m.RunId), m);
        if (!outcome.Broadcast) { _log.Info("run {0}: NCCL id ignored: {1}", m.RunId, outcome.Ignored); return; }
        _handouts[m.RunId] = outcome.State!;
        var device = _runs[m.RunId].Spec.Options.Device;
        var group = new AllReduceGroup(m.RunId, m.Generation, _roster.Group.ToArray(), m.Id) { Backend = AllReduceBackend.Nccl, Device = device };
        foreach (var w in _roster.ByRank) w.Tell(group);
    }

    private void Broadcast()
    {
        foreach (var id in _runs.Where(r => !r.Value.IsTerminal).Select(r => r.Key).ToList()) Apply(id, Membership());
        // workers that joined after the wait ended (none had come back in time) get a full wait to say what they hold
        if (_roster.Group.Length > 0 && _runs.Values.Any(r => r.AwaitProgress && !r.IsTerminal) && !Timers.IsTimerActive("resume-wait"))
            Timers.StartSingleTimer("resume-wait", new ResumeWaitExpired(), _resumeWait);
    }

    private void Apply(string runId, RunCommand cmd)
    {
        if (!_runs.TryGetValue(runId, out var s)) { Sender.Tell(new RunRejected(runId, "unknown run")); return; }
        var events = RunMachine.Decide(s, cmd);
        var (next, effects) = RunMachine.Fold(s, events);
        _runs[runId] = next;
        var journalled = events.OfType<RunEvent>().ToList();
        if (journalled.Count == 0)
        {
            foreach (var fx in effects) Execute(next, fx);
            return;
        }
        // commands wait (stashed) until the events are written; only then do workers hear of e.g. a commit
        int left = journalled.Count;
        PersistAll(journalled, _ =>
        {
            if (--left > 0) return;
            foreach (var fx in effects) Execute(next, fx);
        });
    }

    /// <summary>What the run's checkpoints record for early stopping: the coordinator's counts outlive any lead worker.</summary>
    private static EarlyStoppingCounts EarlyStopping(RunState run) => new(run.BestValidationLoss, run.ValidationsWithoutImprovement, run.BestValidationStep);

    private void PlanBatches(RunState run, long generation, int epoch, long step, long[][][] cut, Func<int, int, bool>? which = null)
    {
        var routed = BatchRouting.Plan(run.Shards, run.Spec.RunId, generation, epoch, step, cut, which);
        foreach (var r in routed.Routes) Context.ActorSelection(r.Loader + LoaderPath).Tell(r.Plan);
        if (routed.Unowned.Count > 0)
            _log.Warning("run {0} step {1}: no loader owns samples {2}; their micro-batches wait for loaders", run.Spec.RunId, step, string.Join(", ", routed.Unowned));
    }

    private void Execute(RunState run, RunEffect fx)
    {
        var runId = run.Spec.RunId;
        var workers = _roster.ByRank;
        switch (fx)
        {
            case AssignShardsEffect a:
                foreach (var (loader, shards) in a.Table.ByLoader())
                    Context.ActorSelection(loader + LoaderPath).Tell(new AssignShards(runId, a.Table.Generation, a.Table.ShardCount, shards, run.Spec));
                break;
            case RunPlannedEffect p:
                _planned[runId] = new RunPlanned(run.Spec, p.TrainIds, p.ValidationIds);
                foreach (var w in workers) w.Tell(_planned[runId]);
                _log.Info("run {0}: planned {1} training and {2} validation samples", runId, p.TrainIds.Length, p.ValidationIds.Length);
                foreach (var problem in p.Problems) _log.Warning("run {0}: {1}", runId, problem);
                break;
            case StartStepEffect st:
                if (!st.AlreadyPlanned) PlanBatches(run, st.Generation, st.Epoch, st.GlobalStep, st.MicroBatches);
                if (st.Next is { } next) PlanBatches(run, st.Generation, st.NextEpoch, st.GlobalStep + 1, next);
                for (int rank = 0; rank < workers.Count && rank < st.MicroBatches.Length; rank++)
                    workers[rank].Tell(new StartStep(runId, st.Generation, st.Epoch, st.GlobalStep, st.MicroBatches[rank].Length));
                break;
            case ReplanBatchesEffect r:
                _log.Warning("run {0}: loaders {1} left during step {2}; their batches go to the new owners", runId, string.Join(", ", r.Gone), r.Step.GlobalStep);
                long s = r.Step.GlobalStep;
                PlanBatches(run, r.Step.Generation, r.Step.Epoch, s, r.Step.MicroBatches, (rank, micro) => r.Lost.Contains(new(s, rank, micro)));
                if (r.Step.Next is { } ahead)
                    PlanBatches(run, r.Step.Generation, r.Step.NextEpoch, s + 1, ahead, (rank, micro) => r.Lost.Contains(new(s + 1, rank, micro)));
                break;
            case ResendCommitEffect c:
                foreach (var w in workers) w.Tell(new StepCommitted(runId, c.GlobalStep, c.Totals));
                break;
            case StepCommittedEffect c:
                _lastStats[runId] = c.Totals;
                foreach (var w in workers) w.Tell(new StepCommitted(runId, c.Record.GlobalStep, c.Totals));
                _log.Info("run {0}: step {1} committed (loss {2:G6})", runId, c.Record.GlobalStep, StepStats.Loss(c.Totals));
                break;
            case CheckpointEffect c:
                WorkerFor(c.Worker)?.Tell(new CheckpointCommand(runId, c.GlobalStep, c.Tag, c.Final, EarlyStopping(run)));
                break;
            case ValidateEffect v:
                WorkerFor(v.Worker)?.Tell(new ValidateCommand(runId, v.GlobalStep, EarlyStopping(run)));
                break;
            case HandOverEffect t:
                StartHandOver(runId, t);
                break;
            case RestoreEffect r:
                _log.Warning("run {0}: {1}; workers {2} load it", runId, run.Detail, string.Join(", ", r.Workers));
                for (int i = 0; i < r.Workers.Length; i++)
                    WorkerFor(r.Workers[i])?.Tell(new RestoreCheckpoint(runId, r.Generation, r.GlobalStep, r.Path, CutMetricsLog: r.RollBack && i == 0));
                break;
            case RunEndedEffect e:
                _log.Info("run {0} {1}: {2}", runId, e.Phase, e.Reason);
                break;
            case CommandRejected r:
                _log.Warning("run {0}: {1}", runId, r.Reason);
                break;
        }
    }
}
