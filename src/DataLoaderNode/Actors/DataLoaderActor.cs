using Akka.Actor;
using Akka.Event;
using HiggsCluster.DataLoaderNode.Serving;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;
using HiggsCluster.Messages.Serialization;

namespace HiggsCluster.DataLoaderNode.Actors;

/// <summary>
/// Thin shell around one <see cref="ServingWindow"/> per (run, rank): builds planned batches off the actor thread,
/// sends them to the worker that pulled (credits), releases them on ack. A batch larger than the remoting frame is
/// reported as failed instead of being discarded by the transport.
/// </summary>
public sealed class DataLoaderActor : ReceiveActor
{
    public const string Name = "data-loader";

    private sealed record Built(string RunId, long Generation, int Rank, BatchKey Key, BatchDelivery? Batch, string? Error);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IBatchBuilder _builder;
    private readonly int _window;
    private readonly long _maxMessageBytes;
    private readonly Dictionary<(string Run, int Rank), ServingWindow> _windows = new();
    private readonly Dictionary<(string Run, int Rank, BatchKey Key), PlanMicroBatch> _plans = new();
    private readonly Dictionary<(string Run, int Rank, BatchKey Key), BatchDelivery> _ready = new();
    private LoaderGroups<IActorRef> _groups = LoaderGroups<IActorRef>.Empty;
    private readonly Dictionary<string, AssignShards> _shards = new(StringComparer.Ordinal);

    private readonly FaultInjector _faults;

    public DataLoaderActor(IBatchBuilder builder, int window, long maxMessageBytes, FaultInjector? faults = null)
    {
        _faults = faults ?? FaultInjector.None;
        _builder = builder;
        _window = window;
        _maxMessageBytes = maxMessageBytes;
        Receive<AssignShards>(a =>
        {
            _shards[a.RunId] = a;
            _log.Info("run {0}: shards [{1}] of {2} (generation {3})", a.RunId, string.Join(',', a.ShardIds), a.ShardCount, a.Generation);
            var coordinator = Sender;
            var where = Self.Path.ToString();
            Task.Run(() =>
            {
                try { return _builder.Prepare(a); }
                catch (Exception e)
                {
                    // a loader that cannot read its shards at all says so for every id it owns; the run fails with the reason
                    return new ShardsPrepared(a.RunId, a.Generation, a.ShardIds, Array.Empty<long>(), Array.Empty<long>(),
                        new[] { $"loader {where}: shards [{string.Join(',', a.ShardIds)}] could not be prepared: {e.Message}" });
                }
            }).PipeTo(coordinator);
        });
        Receive<PlanMicroBatch>(OnPlan);
        Receive<BatchDemand>(d =>
        {
            if (_groups.Demand(d.RunId, d.Rank, d.Generation, Sender) is not { } accepted) return;
            _groups = accepted;
            Handle(d.RunId, d.Rank, new Demand(d.Credits, d.Generation));
        });
        Receive<BatchAck>(a => Handle(a.RunId, a.Rank, new Acknowledge(new BatchKey(a.Step, a.Micro), a.Generation)));
        Receive<Built>(OnBuilt);
    }

    private void OnPlan(PlanMicroBatch p)
    {
        var (groups, verdict) = _groups.Plan(p.RunId, p.Generation);
        if (verdict == PlanGroup.Stale) return;
        _groups = groups;
        if (verdict == PlanGroup.Newer)
        {
            foreach (var key in _windows.Keys.Where(k => k.Run == p.RunId).ToList())
                Handle(key.Run, key.Rank, new ResetWindow(p.Generation));
            foreach (var key in _plans.Where(kv => kv.Key.Run == p.RunId && kv.Value.Generation < p.Generation).Select(kv => kv.Key).ToList())
                _plans.Remove(key);
        }
        var k = new BatchKey(p.Step, p.Micro);
        _plans[(p.RunId, p.Rank, k)] = p;
        Handle(p.RunId, p.Rank, new PlanBatch(k, p.Generation));
    }

    private void OnBuilt(Built b)
    {
        if (b.Generation != _groups.GenerationOf(b.RunId)) return; // reset meanwhile
        if (b.Batch is not null)
        {
            long size = BulkSerializer.EncodedSize(b.Batch);
            if (size > _maxMessageBytes)
            {
                Handle(b.RunId, b.Rank, new BatchBuildFailed(b.Key, $"batch of {size} bytes exceeds the {_maxMessageBytes}-byte remoting frame"));
                return;
            }
            _ready[(b.RunId, b.Rank, b.Key)] = b.Batch;
            Handle(b.RunId, b.Rank, new BatchBuilt(b.Key));
        }
        else Handle(b.RunId, b.Rank, new BatchBuildFailed(b.Key, b.Error ?? "unknown error"));
    }

    private void Handle(string run, int rank, WindowCommand cmd)
    {
        if (!_windows.TryGetValue((run, rank), out var w)) w = ServingWindow.Create(_window);
        var (next, effects) = w.Handle(cmd);
        _windows[(run, rank)] = next;
        foreach (var fx in effects)
        {
            switch (fx)
            {
                case BuildBatch bb:
                    {
                        var plan = _plans[(run, rank, bb.Key)];
                        var self = Self;
                        long gen = _groups.GenerationOf(run);
                        var spec = _shards.TryGetValue(run, out var assigned) ? assigned.Spec : null;
                        Task.Run(() =>
                        {
                            if (spec is null) return new Built(run, gen, rank, bb.Key, null, $"run {run} has no shards on this loader");
                            try { return new Built(run, gen, rank, bb.Key, _builder.Build(spec, plan) with { Generation = plan.Generation }, null); }
                            catch (Exception e) { return new Built(run, gen, rank, bb.Key, null, e.Message); }
                        }).PipeTo(self);
                        break;
                    }
                case SendBatch sb:
                    _faults.At(FaultPoint.ServeBatch, sb.Key.GlobalStep);
                    if (_groups.TryPuller(run, rank, out var puller)) puller.Tell(_ready[(run, rank, sb.Key)]);
                    break;
                case ReleaseBatch rb:
                    _ready.Remove((run, rank, rb.Key));
                    _plans.Remove((run, rank, rb.Key));
                    break;
                case ReportBatchFailed f:
                    _plans.Remove((run, rank, f.Key));
                    _log.Error("run {0} rank {1} {2}: {3}", run, rank, f.Key, f.Reason);
                    if (_groups.TryPuller(run, rank, out var worker))
                        worker.Tell(new BatchFailed(run, f.Key.GlobalStep, rank, f.Key.Micro, f.Reason));
                    break;
                case ProtocolError pe:
                    _log.Warning("run {0} rank {1}: {2}", run, rank, pe.Reason);
                    break;
            }
        }
    }
}
