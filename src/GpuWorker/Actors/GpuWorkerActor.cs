using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.GpuWorker.Healing;
using HiggsCluster.GpuWorker.Steps;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.GpuWorker.Actors;

/// <summary>
/// Thin shell around <see cref="WorkerStepState"/>: registers with the coordinator (again every few seconds, so a
/// failed-over coordinator relearns it), forms the communicator of each group generation (TCP ring, or NCCL with the id
/// rank 0 creates and the coordinator hands out; see <see cref="GroupFormation"/>), pulls batches from every loader
/// with a fixed number of credits, runs micro-steps, all-reduces off the actor thread, reports the step.
/// </summary>
public sealed class GpuWorkerActor : ReceiveActor, IWithTimers
{
    private sealed record RingReady(long Generation, IGradientAllReduce? Ring, string? Error);
    private sealed record ReduceDone(long Generation, long Step, string? Error);
    private sealed record Reregister;
    private sealed record NcclIdFailed(string RunId, long Generation, string Error);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IStepRunner _runner;
    private readonly IActorRef _coordinator;
    private readonly int _credits;
    private readonly TimeSpan _ringTimeout;
    private readonly RingListener _listener;
    private readonly string _workerId;
    private readonly HashSet<string> _loaders = new(StringComparer.Ordinal);
    private readonly HashSet<string> _demanded = new(StringComparer.Ordinal);
    private readonly Dictionary<(long Step, int Micro), (BatchDelivery Batch, IActorRef From)> _batches = new();
    private readonly Dictionary<long, double[]> _committed = new();
    private WorkerStepState _state = WorkerStepState.Idle;
    private AllReduceGroup? _group;
    private GroupFormation _formation = GroupFormation.None;
    private readonly IAllReduceBackends _backends;
    private IGradientAllReduce? _ring;
    private string? _runId;
    private int _rank = -1;
    private bool _reducePending;
    private long _applied; // committed steps of _runId whose update this worker holds
    private StateAssembly? _incoming;
    // a peer's state can overtake the coordinator's group message that names the run to a newcomer (other sender, other
    // connection): kept until the run is known
    private readonly List<TensorSnapshot> _early = new();

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly FaultInjector _faults;

    public GpuWorkerActor(IStepRunner runner, IActorRef coordinator, string ringHost, int credits, TimeSpan ringTimeout, FaultInjector? faults = null,
        IAllReduceBackends? backends = null)
    {
        _faults = faults ?? FaultInjector.None;
        _backends = backends ?? new RealAllReduceBackends();
        _runner = runner;
        _coordinator = coordinator;
        _credits = credits;
        _ringTimeout = ringTimeout;
        _listener = RingListener.Start(ringHost);
        _workerId = Guid.NewGuid().ToString("N")[..12];

        Receive<Reregister>(_ => Register());
        Receive<ClusterEvent.MemberUp>(e => { if (e.Member.HasRole("loader")) { _loaders.Add(e.Member.Address.ToString()); DemandFromNewLoaders(); } });
        Receive<ClusterEvent.MemberRemoved>(e => { _loaders.Remove(e.Member.Address.ToString()); _demanded.Remove(e.Member.Address.ToString()); });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<RunPlanned>(p =>
        {
            try { _runner.BeginRun(p); }
            catch (Exception e)
            {
                _log.Error(e, "worker {0}: run {1} could not be loaded: {2}", _workerId, p.Spec.RunId, e.Message);
                _coordinator.Tell(new WorkerFailed(p.Spec.RunId, _workerId, p.Spec.StartStep, $"could not load the run: {e.Message}"));
            }
        });
        Receive<AllReduceGroup>(OnGroup);
        Receive<RingReady>(OnRingReady);
        Receive<NcclIdFailed>(f =>
        {
            if (f.RunId != _runId || _group is null || f.Generation != _group.Generation) return;
            _log.Error("worker {0}: could not create the NCCL id of generation {1}: {2}", _workerId, f.Generation, f.Error);
            _coordinator.Tell(new WorkerFailed(f.RunId, _workerId, _state.GlobalStep, $"rank 0 could not create the NCCL id: {f.Error}"));
        });
        Receive<StartStep>(s =>
        {
            if (_group is null || s.Generation != _group.Generation || s.RunId != _runId) return;
            Feed(new BeginStep(s.Generation, s.Step, s.MicroBatches));
        });
        Receive<BatchDelivery>(b =>
        {
            if (_group is null || b.Generation != _group.Generation || b.RunId != _runId || b.Rank != _rank)
            {
                // planned for another group or rank: release it at the loader, never train on it
                _log.Warning("worker {0}: released a batch for rank {1} of generation {2} (I am rank {3} of {4})",
                    _workerId, b.Rank, b.Generation, _rank, _group?.Generation);
                Sender.Tell(new BatchAck(b.RunId, b.Step, b.Rank, b.Micro, b.Generation));
                return;
            }
            // the credit goes back on receipt, not after the micro-step: a batch held for a later step (look-ahead) must
            // not block one of the current step that a loader re-produced behind it; the coordinator plans at most one
            // step ahead, which bounds what a worker holds
            Sender.Tell(new BatchAck(b.RunId, b.Step, b.Rank, b.Micro, b.Generation));
            Sender.Tell(new BatchDemand(b.RunId, b.Generation, _rank, 1));
            _batches[(b.Step, b.Micro)] = (b, Sender);
            Feed(new BatchArrived(b.Step, b.Micro));
        });
        Receive<BatchFailed>(f =>
        {
            _log.Error("run {0} step {1} micro {2} could not be built: {3}", f.RunId, f.Step, f.Micro, f.Reason);
            _coordinator.Tell(new WorkerFailed(f.RunId, _workerId, f.Step, $"micro-batch {f.Micro} of rank {f.Rank} could not be built: {f.Reason}"));
        });
        Receive<ReduceDone>(OnReduceDone);
        Receive<StepCommitted>(c =>
        {
            if (c.RunId != _runId) return;
            _committed[c.Step] = c.Totals;
            Feed(new Committed(c.Step));
        });
        Receive<SendStateTo>(OnSendState);
        Receive<RestoreCheckpoint>(OnRestore);
        Receive<TensorSnapshot>(OnStateChunk);
        Receive<CheckpointCommand>(c => Sender.Tell(new CheckpointDone(c.RunId, c.Step, _runner.SaveCheckpoint(c.RunId, c.Step, c.Tag, c.Final))));
        Receive<ValidateCommand>(v => Sender.Tell(new ValidationDone(v.RunId, v.Step, _runner.Validate(v.RunId, v.Step))));
    }

    protected override void PreStart()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Register();
        Timers.StartPeriodicTimer("register", new Reregister(), TimeSpan.FromSeconds(5));
    }

    protected override void PostStop()
    {
        Cluster.Get(Context.System).Unsubscribe(Self);
        _ring?.Abort();
        _listener.Dispose();
    }

    private void Register()
    {
        var ep = _listener.EndPoint;
        _coordinator.Tell(new RegisterWorker(_workerId, ep.Address.ToString(), ep.Port, HasCuda: _backends.NcclUsable, _runId, _applied));
    }

    private void OnGroup(AllReduceGroup g)
    {
        var (formation, newGroup, effects) = _formation.Handle(g, _workerId);
        _formation = formation;
        if (newGroup)
        {
            if (g.RunId != _runId) _applied = 0;
            _group = g;
            _runId = g.RunId;
            _rank = formation.Rank;
        }
        foreach (var fx in effects)
            switch (fx)
            {
                case AbortCommunicator:
                    _ring?.Abort();
                    _ring = null;
                    break;
                case FormRing f:
                    var eps = f.Peers.Select(p => new IPEndPoint(IPAddress.Parse(p.Host), p.Port)).ToArray();
                    var (log, me) = (_log, _workerId);
                    _backends.ConnectRing(_listener, f.Rank, eps, f.Generation, f.Key, _ringTimeout, refused: why => log.Warning("worker {0}: {1}", me, why))
                        .ContinueWith(t => t.IsCompletedSuccessfully
                            ? new RingReady(f.Generation, t.Result, null)
                            : new RingReady(f.Generation, null, t.Exception?.GetBaseException().Message ?? "cancelled"))
                        .PipeTo(Self);
                    break;
                case CreateNcclId c:
                    var coordinator = _coordinator;
                    var self = Self;
                    var backends = _backends;
                    Task.Run(() =>
                    {
                        try { coordinator.Tell(new NcclIdCreated(c.RunId, c.Generation, backends.CreateNcclId()), self); }
                        catch (Exception e) { self.Tell(new NcclIdFailed(c.RunId, c.Generation, e.Message)); }
                    });
                    break;
                case JoinNccl j:
                    JoinOffThread(j);
                    break;
            }
        if (!newGroup) return;
        _reducePending = false;
        Feed(new GroupChanged(g.Generation));
        _demanded.Clear();
        var early = _early.Where(c => c.RunId == _runId).ToList();
        _early.Clear();
        foreach (var c in early) OnStateChunk(c);
        if (_rank < 0) return; // not part of this group
        DemandFromNewLoaders();
    }

    /// <summary>
    /// ncclCommInitRank blocks until every rank joined (or forever, if one never does): on a thread of its own, so
    /// neither the actor nor the thread pool waits on it. A join that lost its generation meanwhile is aborted.
    /// </summary>
    private void JoinOffThread(JoinNccl j)
    {
        var self = Self;
        var backends = _backends;
        new Thread(() =>
        {
            RingReady r;
            try { r = new RingReady(j.Generation, backends.JoinNccl(j.Id, j.Rank, j.World, j.Generation, j.Device), null); }
            catch (Exception e) { r = new RingReady(j.Generation, null, e.Message); }
            self.Tell(r);
        }) { IsBackground = true, Name = $"nccl-join-g{j.Generation}-r{j.Rank}" }.Start();
    }

    private void OnRingReady(RingReady r)
    {
        if (_group is null || r.Generation != _group.Generation) { r.Ring?.Abort(); return; }
        if (r.Ring is null) { _log.Error("ring of generation {0} failed: {1}", r.Generation, r.Error); return; }
        _ring = r.Ring;
        if (_reducePending) StartReduce();
    }

    private void DemandFromNewLoaders()
    {
        if (_runId is null || _rank < 0) return;
        foreach (var l in _loaders.Where(l => _demanded.Add(l)))
            Context.ActorSelection(l + "/user/data-loader").Tell(new BatchDemand(_runId, _group!.Generation, _rank, _credits));
    }

    private void Release(long step, int micro) => _batches.Remove((step, micro));

    private void StartReduce()
    {
        _reducePending = false;
        var ring = _ring!;
        var bucket = _runner.GradientBucket(ring.AcceptsDeviceMemory);
        long gen = _group!.Generation, step = _state.GlobalStep;
        _faults.At(FaultPoint.BeforeAllReduce, step);
        Task.Run(() =>
        {
            ring.AllReduceSum(bucket.Device != IntPtr.Zero ? AllReduce.GradientBucket.Device(bucket.Device, bucket.Count) : AllReduce.GradientBucket.Host(bucket.Host));
            return new ReduceDone(gen, step, null);
        }).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new ReduceDone(gen, step, t.Exception?.GetBaseException().Message)).PipeTo(Self);
    }

    private void OnReduceDone(ReduceDone d)
    {
        if (_group is null || d.Generation != _group.Generation) return;
        if (d.Error is not null) { _log.Error("all-reduce of step {0} failed: {1}", d.Step, d.Error); return; } // the group will be re-formed
        _faults.At(FaultPoint.AfterAllReduce, d.Step);
        Feed(new AllReduceFinished(d.Step));
    }

    private void Feed(WorkerCommand first)
    {
        try { FeedUnsafe(first); }
        catch (Exception e) when (_runId is not null)
        {
            _log.Error(e, "worker {0}: step {1} failed: {2}", _workerId, _state.GlobalStep, e.Message);
            _coordinator.Tell(new WorkerFailed(_runId, _workerId, _state.GlobalStep, e.Message));
        }
    }

    /// <summary>A peer joined after the last commit: hand it this worker's committed state, in frame-sized chunks.</summary>
    private void OnSendState(SendStateTo m)
    {
        if (m.RunId != _runId || _applied != m.Step || _state.Phase != WorkerPhase.Idle)
        {
            _coordinator.Tell(new StateNotSent(m.RunId, _workerId, m.Step,
                $"worker {_workerId} holds {_applied} steps of run {_runId ?? "(none)"} and is {_state.Phase}"));
            return;
        }
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var chunks = StateChunks.Split(m.RunId, m.Step, m.Generation, _runner.ExportState());
            foreach (var path in m.TargetPaths)
            {
                var target = Context.ActorSelection(path);
                foreach (var c in chunks) target.Tell(c);
            }
            _log.Info("worker {0}: sent the state of step {1} ({2} chunks) to {3} in {4} ms", _workerId, m.Step, chunks.Count,
                string.Join(", ", m.TargetPaths), clock.ElapsedMilliseconds);
        }
        catch (Exception e)
        {
            _coordinator.Tell(new StateNotSent(m.RunId, _workerId, m.Step, e.Message));
        }
    }

    private void OnStateChunk(TensorSnapshot chunk)
    {
        if (chunk.RunId != _runId)
        {
            if (_early.Count < 4096) _early.Add(chunk);
            return;
        }
        if (chunk.Step == _applied && _incoming is null) return; // a hand-over sent again: this worker installed it already
        try
        {
            var (next, complete) = StateAssembly.Add(_incoming, chunk);
            _incoming = next;
            if (complete is null) return;
            if (_state.Phase != WorkerPhase.Idle)
                throw new InvalidOperationException($"state of step {chunk.Step} arrived while step {_state.GlobalStep} is {_state.Phase}");
            _runner.ImportState(complete);
            _applied = chunk.Step;
            _log.Info("worker {0}: installed the state of step {1} from a peer", _workerId, chunk.Step);
            _coordinator.Tell(new StateLoaded(chunk.RunId, _workerId, chunk.Step));
        }
        catch (Exception e)
        {
            _incoming = null;
            _log.Error(e, "worker {0}: handed-over state of step {1} unusable: {2}", _workerId, chunk.Step, e.Message);
            _coordinator.Tell(new WorkerFailed(chunk.RunId, _workerId, chunk.Step, $"handed-over state unusable: {e.Message}"));
        }
    }

    /// <summary>The run rolled back to a checkpoint: whatever step this worker was in is abandoned, the checkpoint loaded.</summary>
    private void OnRestore(RestoreCheckpoint r)
    {
        if (r.RunId != _runId) return;
        try
        {
            if (_state.Phase != WorkerPhase.Idle) _runner.DiscardGradients();
            _state = WorkerStepState.Idle with { Generation = _state.Generation }; // batches held early go too: the steps are planned again
            _batches.Clear();
            _committed.Clear();
            _incoming = null;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            _runner.RestoreCheckpoint(r.Path, r.Step, r.CutMetricsLog);
            _applied = r.Step;
            _log.Info("worker {0}: loaded {1} ({2} steps) in {3} ms", _workerId, r.Path ?? "the run's initial adapter", r.Step, clock.ElapsedMilliseconds);
            _coordinator.Tell(new StateLoaded(r.RunId, _workerId, r.Step));
        }
        catch (Exception e)
        {
            _log.Error(e, "worker {0}: checkpoint {1} could not be restored: {2}", _workerId, r.Path, e.Message);
            _coordinator.Tell(new WorkerFailed(r.RunId, _workerId, r.Step, $"checkpoint {r.Path ?? "(initial adapter)"} could not be restored: {e.Message}"));
        }
    }

    private void FeedUnsafe(WorkerCommand first)
    {
        var queue = new Queue<WorkerCommand>();
        queue.Enqueue(first);
        while (queue.Count > 0)
        {
            var (next, effects) = _state.Handle(queue.Dequeue());
            _state = next;
            foreach (var fx in effects)
            {
                switch (fx)
                {
                    case RunMicroStep m:
                        queue.Enqueue(new MicroStepFinished(m.GlobalStep, m.Micro, _runner.MicroStep(_batches[(m.GlobalStep, m.Micro)].Batch, _group!.Peers.Length)));
                        break;
                    case AckBatch a: Release(a.GlobalStep, a.Micro); break;
                    case DropBatch d: Release(d.GlobalStep, d.Micro); break;
                    case AllReduceGradients:
                        if (_ring is not null) StartReduce(); else _reducePending = true;
                        break;
                    case StepOptimizer o:
                        _committed.Remove(o.GlobalStep, out var totals);
                        _runner.OptimizerStep(o.GlobalStep, totals ?? throw new InvalidOperationException($"step {o.GlobalStep} committed without totals"), lead: _rank == 0);
                        _applied = o.GlobalStep + 1;
                        queue.Enqueue(new OptimizerStepped(o.GlobalStep));
                        break;
                    case ReportStep r:
                        _coordinator.Tell(new StepDone(_runId!, r.Generation, r.GlobalStep, _rank, _runner.StepStatistics(), _runner.LoraChecksum()));
                        break;
                    case DiscardGradients: _runner.DiscardGradients(); break;
                    case WorkerProtocolError e: _log.Warning("worker {0}: {1}", _workerId, e.Reason); break;
                }
            }
        }
    }
}
