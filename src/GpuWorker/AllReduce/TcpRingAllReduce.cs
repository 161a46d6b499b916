using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>The listening end of a rank's ring slot; started before the group forms so its port can be published.</summary>
public sealed class RingListener : IDisposable
{
    private readonly TcpListener _listener;
    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    private RingListener(TcpListener l) { _listener = l; }

    public static RingListener Start(string host = "127.0.0.1", int port = 0)
    {
        var l = new TcpListener(IPAddress.Parse(host), port);
        l.Start();
        return new RingListener(l);
    }

    internal Task<Socket> AcceptAsync(CancellationToken ct) => _listener.AcceptSocketAsync(ct).AsTask();

    public void Dispose() => _listener.Stop();
}

/// <summary>
/// Ring all-reduce over TCP for CPU clusters and tests: reduce-scatter then all-gather (each rank sends and receives
/// 2·(world−1)/world of the bucket), streamed in segments so receive and send overlap. Summation order: see
/// <see cref="RingLayout"/>. The all-gather copies reduced chunks verbatim, so every rank holds identical bits.
/// </summary>
public sealed class TcpRingAllReduce : IGradientAllReduce
{
    private const uint Magic = 0x48524E47; // "HRNG"
    private const int SegmentFloats = 256 * 1024;

    private readonly Socket? _next, _prev;
    private readonly byte[] _recv = new byte[SegmentFloats * sizeof(float)];

    public int Rank { get; }
    public int WorldSize { get; }
    public long Generation { get; }
    public bool AcceptsDeviceMemory => false;

    private TcpRingAllReduce(int rank, int world, long generation, Socket? next, Socket? prev)
    {
        Rank = rank; WorldSize = world; Generation = generation; _next = next; _prev = prev;
    }

    /// <summary>
    /// Connects rank <paramref name="rank"/> to its successor (<paramref name="peers"/>[rank+1]) and accepts its
    /// predecessor on <paramref name="listener"/>; both ends check world size, generation and ranks.
    /// </summary>
    public static async Task<TcpRingAllReduce> ConnectAsync(
        RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, TimeSpan timeout, CancellationToken ct = default)
    {
        int world = peers.Count;
        if (rank < 0 || rank >= world) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} outside world of {world}");
        if (world == 1) return new TcpRingAllReduce(rank, 1, generation, null, null);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        int nextRank = (rank + 1) % world, prevRank = RingLayout.Mod(rank - 1, world);
        var acceptTask = AcceptPredecessorAsync(listener, rank, prevRank, world, generation, cts.Token);
        Socket next;
        try { next = await ConnectSuccessorAsync(peers[nextRank], rank, world, generation, cts.Token); }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new AllReduceException($"rank {rank}: could not connect to rank {nextRank} at {peers[nextRank]} within {timeout}", e);
        }
        Socket prev;
        try { prev = await acceptTask; }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            next.Dispose();
            throw new AllReduceException($"rank {rank}: rank {prevRank} did not connect within {timeout}", e);
        }
        foreach (var s in new[] { next, prev })
        {
            s.NoDelay = true;
            s.ReceiveTimeout = s.SendTimeout = (int)Math.Min(int.MaxValue, Math.Max(timeout.TotalMilliseconds, 30_000));
        }
        return new TcpRingAllReduce(rank, world, generation, next, prev);
    }

    private static async Task<Socket> ConnectSuccessorAsync(IPEndPoint ep, int rank, int world, long generation, CancellationToken ct)
    {
        while (true)
        {
            var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(ep, ct);
                var hello = new byte[20];
                BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
                BinaryPrimitives.WriteInt64LittleEndian(hello.AsSpan(4), generation);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(16), world);
                await s.SendAsync(hello, SocketFlags.None, ct);
                return s;
            }
            catch (SocketException)
            {
                // the successor may not listen yet: retry until the formation timeout
                s.Dispose();
                await Task.Delay(50, ct);
            }
        }
    }

    private static async Task<Socket> AcceptPredecessorAsync(RingListener listener, int rank, int prevRank, int world, long generation, CancellationToken ct)
    {
        while (true)
        {
            var s = await listener.AcceptAsync(ct);
            var hello = new byte[20];
            int got = 0;
            while (got < hello.Length)
            {
                int n = await s.ReceiveAsync(hello.AsMemory(got), SocketFlags.None, ct);
                if (n == 0) break;
                got += n;
            }
            if (got == hello.Length && BinaryPrimitives.ReadUInt32LittleEndian(hello) == Magic
                && BinaryPrimitives.ReadInt64LittleEndian(hello.AsSpan(4)) == generation
                && BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(12)) == prevRank
                && BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(16)) == world)
                return s;
            // a stale generation or a stranger: refuse it and keep waiting for the right predecessor
            s.Dispose();
        }
    }

    public void AllReduceSum(GradientBucket bucket)
    {
        if (bucket.OnDevice) throw new AllReduceException("the TCP ring reduces host memory only; use the NCCL backend for device buffers");
        if (WorldSize == 1) return;
        var data = bucket.HostData;
        int count = data.Length, world = WorldSize;
        try
        {
            for (int s = 0; s < world - 1; s++)
                Exchange(data, RingLayout.Chunk(count, world, RingLayout.Mod(Rank - s, world)),
                               RingLayout.Chunk(count, world, RingLayout.Mod(Rank - s - 1, world)), add: true);
            for (int s = 0; s < world - 1; s++)
                Exchange(data, RingLayout.Chunk(count, world, RingLayout.Mod(Rank + 1 - s, world)),
                               RingLayout.Chunk(count, world, RingLayout.Mod(Rank - s, world)), add: false);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            throw new AllReduceException($"rank {Rank}/{WorldSize} generation {Generation}: ring broken ({e.Message}); form a new group", e);
        }
    }

    private void Exchange(Memory<float> data, (int Start, int Length) send, (int Start, int Length) recv, bool add)
    {
        var sendMem = data.Slice(send.Start, send.Length);
        var sender = Task.Run(() =>
        {
            var bytes = MemoryMarshal.AsBytes(sendMem.Span);
            while (bytes.Length > 0)
            {
                int n = _next!.Send(bytes);
                bytes = bytes[n..];
            }
        });
        var target = data.Slice(recv.Start, recv.Length);
        for (int off = 0; off < recv.Length; off += SegmentFloats)
        {
            int len = Math.Min(SegmentFloats, recv.Length - off);
            var buf = _recv.AsSpan(0, len * sizeof(float));
            ReceiveExactly(buf);
            var incoming = MemoryMarshal.Cast<byte, float>(buf);
            var dst = target.Span.Slice(off, len);
            if (add)
                for (int i = 0; i < len; i++) dst[i] = incoming[i] + dst[i];
            else
                incoming.CopyTo(dst);
        }
        sender.GetAwaiter().GetResult();
    }

    private void ReceiveExactly(Span<byte> buf)
    {
        while (buf.Length > 0)
        {
            int n = _prev!.Receive(buf);
            if (n == 0) throw new IOException("predecessor closed the connection");
            buf = buf[n..];
        }
    }

    /// <summary>Closing the sockets is already abrupt: a reduce blocked on them fails at once.</summary>
    public void Abort() => Dispose();

    public void Dispose()
    {
        _next?.Dispose();
        _prev?.Dispose();
    }
}
