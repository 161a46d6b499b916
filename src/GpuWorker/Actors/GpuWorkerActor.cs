using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.GpuWorker.HandOvers;
using HiggsCluster.GpuWorker.Run;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.GpuWorker.Actors;

/// <summary>
/// Wiring around <see cref="WorkerRun"/>, which makes every decision: messages go in, its effects come out as messages,
/// engine calls (<see cref="IStepRunner"/>) and communicator calls, whose results go back in. Registers with the
/// coordinator again every few seconds, so a failed-over coordinator relearns it; all-reduces and NCCL joins run off
/// the actor thread.
/// </summary>
public sealed class GpuWorkerActor : ReceiveActor, IWithTimers
{
    private sealed record CommunicatorFormed(long Generation, IGradientAllReduce? Communicator, string? Error);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IStepRunner _runner;
    private readonly IActorRef _coordinator;
    private readonly TimeSpan _ringTimeout;
    private readonly RingListener _listener;
    private readonly IAllReduceBackends _backends;
    private readonly FaultInjector _faults;
    private IGradientAllReduce? _communicator;
    private IGradientAllReduce? _arriving;
    private WorkerRun _run;

    public ITimerScheduler Timers { get; set; } = null!;

    public GpuWorkerActor(IStepRunner runner, IActorRef coordinator, string ringHost, int credits, TimeSpan ringTimeout, FaultInjector? faults = null,
        IAllReduceBackends? backends = null)
    {
        _faults = faults ?? FaultInjector.None;
        _backends = backends ?? new RealAllReduceBackends();
        _runner = runner;
        _coordinator = coordinator;
        _ringTimeout = ringTimeout;
        _listener = RingListener.Start(ringHost);
        _run = WorkerRun.Start(Guid.NewGuid().ToString("N")[..12], credits);

        Receive<ClusterEvent.MemberUp>(e => { if (e.Member.HasRole("loader")) Handle(new LoaderUp(e.Member.Address.ToString())); });
        Receive<ClusterEvent.MemberRemoved>(e => Handle(new LoaderGone(e.Member.Address.ToString())));
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<RunPlanned>(BeginRun);
        Receive<CommunicatorFormed>(r =>
        {
            _arriving = r.Communicator;
            Handle(new CommunicatorReady(r.Generation, r.Error));
            _arriving?.Abort(); // not taken: formed for a generation that is gone
            _arriving = null;
        });
        Receive<CheckpointCommand>(c => Sender.Tell(new CheckpointDone(c.RunId, c.Step, _runner.SaveCheckpoint(c.RunId, c.Step, c.Tag, c.Final, c.Counts))));
        Receive<ValidateCommand>(v => Sender.Tell(new ValidationDone(v.RunId, v.Step, _runner.Validate(v.RunId, v.Step, v.Counts))));
        Receive<WorkerInput>(i => Handle(i));
        ReceiveAny(m => Handle(new Received(m)));
    }

    protected override void PreStart()
    {
        if (RealAllReduceBackends.UnsafeNcclEnvironment(Environment.GetEnvironmentVariable) is { } unsafeNccl)
            _log.Warning("worker {0}: not using NCCL: {1}; the TCP ring is used", _run.WorkerId, unsafeNccl);
        // outside a cluster (wiring tests) loaders are announced as LoaderUp
        if (Context.System is ExtendedActorSystem { Provider: IClusterActorRefProvider })
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Handle(new RegisterTick());
        Timers.StartPeriodicTimer("register", new RegisterTick(), TimeSpan.FromSeconds(5));
    }

    protected override void PostStop()
    {
        if (Context.System is ExtendedActorSystem { Provider: IClusterActorRefProvider }) Cluster.Get(Context.System).Unsubscribe(Self);
        _communicator?.Abort();
        _listener.Dispose();
    }

    private void BeginRun(RunPlanned p)
    {
        try { _runner.BeginRun(p); }
        catch (Exception e)
        {
            _log.Error(e, "worker {0}: run {1} could not be loaded: {2}", _run.WorkerId, p.Spec.RunId, e.Message);
            _coordinator.Tell(new WorkerFailed(p.Spec.RunId, _run.WorkerId, p.Spec.StartStep, $"could not load the run: {e.Message}"));
        }
    }

    /// <summary>
    /// Feeds the machine and carries out its effects, feeding back what the engine answered; an engine call that throws
    /// fails the step at the coordinator.
    /// </summary>
    private void Handle(WorkerInput first)
    {
        var queue = new Queue<WorkerInput>();
        queue.Enqueue(first);
        try
        {
            while (queue.TryDequeue(out var input))
            {
                var (next, effects) = _run.Handle(input);
                _run = next;
                foreach (var fx in effects)
                    if (Execute(fx) is { } result) queue.Enqueue(result);
            }
        }
        catch (Exception e) when (_run.RunId is { } runId)
        {
            _log.Error(e, "worker {0}: step {1} failed: {2}", _run.WorkerId, _run.Step.GlobalStep, e.Message);
            _coordinator.Tell(new WorkerFailed(runId, _run.WorkerId, _run.Step.GlobalStep, e.Message));
        }
    }

    private WorkerInput? Execute(WorkerRunEffect fx)
    {
        switch (fx)
        {
            case ToCoordinator c: _coordinator.Tell(c.Message); break;
            case ToSender s: Sender.Tell(s.Message); break;
            case ToLoader l: Context.ActorSelection(l.Address + "/user/data-loader").Tell(l.Demand); break;
            case Register reg:
                var ep = _listener.EndPoint;
                _coordinator.Tell(new RegisterWorker(_run.WorkerId, ep.Address.ToString(), ep.Port, HasCuda: _backends.NcclUsable, reg.RunId, reg.AppliedSteps));
                break;
            case Communicator c: Form(c.Formation); break;
            case TakeCommunicator { Keep: true }: (_communicator, _arriving) = (_arriving, null); break;
            case StartAllReduce a: StartReduce(a.Generation, a.Step); break;
            case RunMicro m: return new MicroStepDone(m.Batch.Step, m.Batch.Micro, _runner.MicroStep(m.Batch, m.World));
            case RunOptimizer o:
                _runner.OptimizerStep(o.Step, o.Totals, o.Lead);
                return new OptimizerDone(o.Step);
            case ReportStepDone d:
                _coordinator.Tell(new StepDone(d.RunId, d.Generation, d.Step, d.Rank, _runner.StepStatistics(), _runner.LoraChecksum()));
                break;
            case DiscardStepGradients: _runner.DiscardGradients(); break;
            case SendState s: SendState(s.Request); break;
            case ImportState i: return Load(i.RunId, i.Step, "handed-over state unusable", () => { _runner.ImportState(i.State); return new StateImported(i.RunId, i.Step); });
            case LoadCheckpoint l:
                var r = l.Request;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                return Load(r.RunId, r.Step, $"checkpoint {r.Path ?? "(initial adapter)"} could not be restored", () =>
                {
                    _runner.RestoreCheckpoint(r.Path, r.Step, r.CutMetricsLog);
                    return new CheckpointLoaded(r.RunId, r.Step, r.Path, clock.ElapsedMilliseconds);
                });
            case InjectFault f: _faults.At(f.Point, f.Step); break;
            case Log { Level: Level.Info } l: _log.Info("worker {0}: {1}", _run.WorkerId, l.Text); break;
            case Log { Level: Level.Warning } l: _log.Warning("worker {0}: {1}", _run.WorkerId, l.Text); break;
            case Log l: _log.Error("worker {0}: {1}", _run.WorkerId, l.Text); break;
        }
        return null;
    }

    private WorkerInput Load(string runId, long step, string what, Func<WorkerInput> load)
    {
        try { return load(); }
        catch (Exception e)
        {
            _log.Error(e, "worker {0}: {1}: {2}", _run.WorkerId, what, e.Message);
            return new LoadFailed(runId, step, $"{what}: {e.Message}");
        }
    }

    private void Form(FormationEffect fx)
    {
        switch (fx)
        {
            case AbortCommunicator:
                _communicator?.Abort();
                _communicator = null;
                break;
            case FormRing f:
                var eps = f.Peers.Select(p => new IPEndPoint(IPAddress.Parse(p.Host), p.Port)).ToArray();
                var (log, me) = (_log, _run.WorkerId);
                _backends.ConnectRing(_listener, f.Rank, eps, f.Generation, f.Key, _ringTimeout, refused: why => log.Warning("worker {0}: {1}", me, why))
                    .ContinueWith(t => t.IsCompletedSuccessfully
                        ? new CommunicatorFormed(f.Generation, t.Result, null)
                        : new CommunicatorFormed(f.Generation, null, t.Exception?.GetBaseException().Message ?? "cancelled"))
                    .PipeTo(Self);
                break;
            case CreateNcclId c:
                var (coordinator, self, backends) = (_coordinator, Self, _backends);
                Task.Run(() =>
                {
                    try { coordinator.Tell(new NcclIdCreated(c.RunId, c.Generation, backends.CreateNcclId()), self); }
                    catch (Exception e) { self.Tell(new NcclIdNotCreated(c.RunId, c.Generation, e.Message)); }
                });
                break;
            case JoinNccl j:
                JoinOffThread(j);
                break;
        }
    }

    /// <summary>
    /// ncclCommInitRank blocks until every rank joined (or forever, if one never does): on a thread of its own, so
    /// neither the actor nor the thread pool waits on it. A join that lost its generation meanwhile is aborted.
    /// </summary>
    private void JoinOffThread(JoinNccl j)
    {
        var (self, backends) = (Self, _backends);
        new Thread(() =>
        {
            CommunicatorFormed r;
            try { r = new CommunicatorFormed(j.Generation, backends.JoinNccl(j.Id, j.Rank, j.World, j.Generation, j.Device), null); }
            catch (Exception e) { r = new CommunicatorFormed(j.Generation, null, e.Message); }
            self.Tell(r);
        }) { IsBackground = true, Name = $"nccl-join-g{j.Generation}-r{j.Rank}" }.Start();
    }

    private void StartReduce(long generation, long step)
    {
        var communicator = _communicator ?? throw new InvalidOperationException($"no communicator for the all-reduce of step {step}");
        var bucket = _runner.GradientBucket(communicator.AcceptsDeviceMemory);
        _faults.At(FaultPoint.BeforeAllReduce, step);
        Task.Run(() =>
        {
            communicator.AllReduceSum(bucket.Device != IntPtr.Zero ? AllReduce.GradientBucket.Device(bucket.Device, bucket.Count) : AllReduce.GradientBucket.Host(bucket.Host));
            return new ReduceFinished(generation, step, null);
        }).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new ReduceFinished(generation, step, t.Exception?.GetBaseException().Message)).PipeTo(Self);
    }

    /// <summary>A peer joined after the last commit: this worker's committed state goes to it in frame-sized chunks.</summary>
    private void SendState(HandOverTo m)
    {
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var chunks = HandOverChunks.Split(m.RunId, m.Step, m.Generation, _runner.ExportState());
            foreach (var path in m.TargetPaths)
            {
                var target = Context.ActorSelection(path);
                foreach (var c in chunks) target.Tell(c);
            }
            _log.Info("worker {0}: sent the state of step {1} ({2} chunks) to {3} in {4} ms", _run.WorkerId, m.Step, chunks.Count,
                string.Join(", ", m.TargetPaths), clock.ElapsedMilliseconds);
        }
        catch (Exception e)
        {
            _coordinator.Tell(new HandOverNotSent(m.RunId, _run.WorkerId, m.Step, e.Message));
        }
    }
}
