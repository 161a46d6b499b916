using System.Collections.Concurrent;
using System.Net;
using HiggsCluster.GpuWorker.AllReduce;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// An in-memory stand-in for NCCL shared by the workers of one test: ids are random 128-byte blobs, a join blocks until
/// every rank of the id joined, a collective sums device pointers (pinned host memory here) in rank order once every
/// rank deposited its bucket, and an abort breaks the clique so a rank waiting on a dead peer fails. It records who
/// created which id, who joined with what, and which communicators were aborted or disposed.
/// </summary>
internal sealed class FakeNccl
{
    public sealed record Creation(string Worker, byte[] Id);
    public sealed record Join(string Worker, byte[] Id, int Rank, int World, long Generation, string Device);
    public sealed record Ended(string Worker, long Generation, int World, bool Aborted);

    public readonly ConcurrentQueue<Creation> Creations = new();
    public readonly ConcurrentQueue<Join> Joins = new();
    public readonly ConcurrentQueue<Ended> Ends = new();
    /// <summary>Completed collectives by world size.</summary>
    public readonly ConcurrentDictionary<int, int> Reductions = new();
    public int RingsFormed;
    private readonly ConcurrentDictionary<string, Clique> _cliques = new();
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    public IAllReduceBackends For(string worker) => new Backends(this, worker);

    /// <summary>What happened, in order, for failure messages.</summary>
    public string Describe() =>
        $"created: {string.Join("; ", Creations.Select(c => $"{c.Worker} {Convert.ToHexString(c.Id)[..8]}"))} | " +
        $"joined: {string.Join("; ", Joins.Select(j => $"{j.Worker} g{j.Generation} r{j.Rank}/{j.World} {Convert.ToHexString(j.Id)[..8]}"))} | " +
        $"ended: {string.Join("; ", Ends.Select(e => $"{e.Worker} g{e.Generation} {(e.Aborted ? "aborted" : "disposed")}"))} | " +
        $"reductions: {string.Join("; ", Reductions.Select(r => $"world {r.Key}: {r.Value}"))} | rings: {RingsFormed}";

    private sealed class Backends(FakeNccl hub, string worker) : IAllReduceBackends
    {
        public bool NcclUsable => true;

        public byte[] CreateNcclId()
        {
            var id = new byte[NcclUniqueId.Size];
            Random.Shared.NextBytes(id);
            hub.Creations.Enqueue(new Creation(worker, id));
            return id;
        }

        public IGradientAllReduce JoinNccl(byte[] id, int rank, int world, long generation, string device)
        {
            hub.Joins.Enqueue(new Join(worker, id, rank, world, generation, device));
            var clique = hub._cliques.GetOrAdd(Convert.ToHexString(id), _ => new Clique(hub, world));
            clique.Enter(rank, world);
            return new Member(hub, clique, worker, rank, world, generation);
        }

        public async Task<IGradientAllReduce> ConnectRing(RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, byte[] key, TimeSpan timeout,
            Action<string>? refused = null)
        {
            Interlocked.Increment(ref hub.RingsFormed);
            return await TcpRingAllReduce.ConnectAsync(listener, rank, peers, generation, key, timeout, refused: refused);
        }
    }

    private sealed class Clique(FakeNccl hub, int world)
    {
        private readonly object _gate = new();
        private readonly IntPtr[] _slots = new IntPtr[world];
        private int _joined, _arrived, _round;
        private long _count = -1;
        private bool _aborted;

        public void Enter(int rank, int w)
        {
            if (w != world || rank < 0 || rank >= world) throw new AllReduceException($"fake NCCL: rank {rank} of {w} joins a clique of {world}");
            lock (_gate)
            {
                _joined++;
                Monitor.PulseAll(_gate);
                var until = DateTime.UtcNow + Wait;
                while (_joined < world)
                    if (!Monitor.Wait(_gate, Remaining(until))) throw new AllReduceException($"fake NCCL: only {_joined} of {world} ranks joined");
            }
        }

        public unsafe void Reduce(int rank, IntPtr data, long count)
        {
            lock (_gate)
            {
                if (_aborted) throw new AllReduceException("fake NCCL: communicator aborted");
                if (_count >= 0 && _count != count) throw new AllReduceException($"fake NCCL: rank {rank} reduces {count} floats, others {_count}");
                _count = count;
                _slots[rank] = data;
                int round = _round;
                if (++_arrived == world)
                {
                    var sum = new float[count];
                    for (long i = 0; i < count; i++)
                    {
                        float acc = ((float*)_slots[0])[i];
                        for (int r = 1; r < world; r++) acc += ((float*)_slots[r])[i];
                        sum[i] = acc;
                    }
                    for (int r = 0; r < world; r++) sum.CopyTo(new Span<float>((float*)_slots[r], (int)count));
                    _arrived = 0; _count = -1; _round++;
                    hub.Reductions.AddOrUpdate(world, 1, (_, n) => n + 1);
                    Monitor.PulseAll(_gate);
                    return;
                }
                var until = DateTime.UtcNow + Wait;
                while (_round == round && !_aborted)
                    if (!Monitor.Wait(_gate, Remaining(until))) throw new AllReduceException("fake NCCL: a peer never reduced");
                if (_round == round) throw new AllReduceException("fake NCCL: communicator aborted while reducing");
            }
        }

        public void Abort()
        {
            lock (_gate) { _aborted = true; Monitor.PulseAll(_gate); }
        }

        private static TimeSpan Remaining(DateTime until) => until - DateTime.UtcNow is var t && t > TimeSpan.Zero ? t : TimeSpan.Zero;
    }

    private sealed class Member(FakeNccl hub, Clique clique, string worker, int rank, int world, long generation) : IGradientAllReduce
    {
        private int _ended;
        public int Rank => rank;
        public int WorldSize => world;
        public long Generation => generation;
        public bool AcceptsDeviceMemory => true;

        public void AllReduceSum(GradientBucket bucket)
        {
            if (!bucket.OnDevice) throw new AllReduceException("fake NCCL reduces device memory only");
            clique.Reduce(rank, bucket.DevicePointer, bucket.Count);
        }

        public void Abort()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 1) return;
            clique.Abort();
            hub.Ends.Enqueue(new Ended(worker, generation, world, Aborted: true));
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 1) return;
            hub.Ends.Enqueue(new Ended(worker, generation, world, Aborted: false));
        }
    }
}
