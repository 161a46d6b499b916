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

    /// <summary>How long a connection to the ring listener may take to authenticate before it is dropped.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Connects rank <paramref name="rank"/> to its successor (<paramref name="peers"/>[rank+1]) and accepts its
    /// predecessor on <paramref name="listener"/>. Both connections authenticate with <paramref name="key"/>, the
    /// generation's secret (see <see cref="RingHandshake"/>), and check world size, generation and ranks; any other
    /// connection to the listener is dropped (reported to <paramref name="refused"/>) without holding up the ring.
    /// </summary>
    public static async Task<TcpRingAllReduce> ConnectAsync(
        RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, byte[] key, TimeSpan timeout,
        CancellationToken ct = default, Action<string>? refused = null)
    {
        int world = peers.Count;
        if (rank < 0 || rank >= world) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} outside world of {world}");
        if (key is not { Length: >= RingHandshake.MinKeyBytes })
            throw new AllReduceException($"rank {rank} generation {generation}: no ring key from the coordinator; refusing an unauthenticated ring");
        if (world == 1) return new TcpRingAllReduce(rank, 1, generation, null, null);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        int nextRank = (rank + 1) % world, prevRank = RingLayout.Mod(rank - 1, world);
        var acceptTask = AcceptPredecessorAsync(listener, key, prevRank, world, generation, refused, cts.Token);
        Socket next;
        try { next = await ConnectSuccessorAsync(peers[nextRank], key, rank, world, generation, cts.Token); }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            _ = acceptTask.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
            throw new AllReduceException($"rank {rank}: could not connect to rank {nextRank} at {peers[nextRank]} within {timeout} (not listening, or not holding this generation's key)", e);
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

    private static async Task<Socket> ConnectSuccessorAsync(IPEndPoint ep, byte[] key, int rank, int world, long generation, CancellationToken ct)
    {
        while (true)
        {
            var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(ep, ct);
                using var hs = CancellationTokenSource.CreateLinkedTokenSource(ct);
                hs.CancelAfter(HandshakeTimeout);
                if (await RingHandshake.ConnectAsync(s, key, generation, rank, world, hs.Token)) return s;
                // the successor is still in another generation, or is not who it should be: try again until the timeout
            }
            catch (Exception e) when (e is SocketException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                // the successor may not listen yet
            }
            s.Dispose();
            await Task.Delay(50, ct);
        }
    }

    /// <summary>
    /// Accepts until one connection proves the key and is the expected predecessor. Each connection authenticates on
    /// its own task with its own deadline, so idle or slow strangers cannot hold the slot of the real predecessor.
    /// The accept loop stops as soon as this returns: the listener serves the next generation afterwards.
    /// </summary>
    private static async Task<Socket> AcceptPredecessorAsync(RingListener listener, byte[] key, int prevRank, int world, long generation,
        Action<string>? refused, CancellationToken ct)
    {
        var winner = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        // not disposed: connections still authenticating when the ring formed link to it and see it cancelled
        var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var reg = ct.Register(() => winner.TrySetCanceled(ct));
        var loop = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Socket s;
                try { s = await listener.AcceptAsync(stop.Token); }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
                _ = Task.Run(async () =>
                {
                    var who = s.RemoteEndPoint?.ToString() ?? "?";
                    string? why;
                    using (var hs = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
                    {
                        hs.CancelAfter(HandshakeTimeout);
                        try { why = await RingHandshake.AcceptAsync(s, key, generation, prevRank, world, hs.Token); }
                        catch (OperationCanceledException) { why = $"did not authenticate within {HandshakeTimeout.TotalSeconds:0} s"; }
                        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException) { why = $"failed ({e.Message})"; }
                    }
                    if (why is null && winner.TrySetResult(s)) return;
                    if (why is not null) refused?.Invoke($"ring connection from {who} refused: {why}");
                    s.Dispose();
                });
            }
        });
        try { return await winner.Task; }
        finally
        {
            stop.Cancel();
            try { await loop; } catch (OperationCanceledException) { }
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
