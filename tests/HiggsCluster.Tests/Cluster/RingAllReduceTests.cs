using System.Net;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Training.IO;
using TorchSharp;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class RingAllReduceTests
{
    private static float[][] Inputs(int world, int count, int seed)
    {
        var rnd = new Random(seed);
        // values of very different magnitudes so a different addition order would change the bits
        return Enumerable.Range(0, world).Select(_ => Enumerable.Range(0, count)
            .Select(_ => (float)((rnd.NextDouble() - 0.5) * Math.Pow(10, rnd.Next(-6, 7)))).ToArray()).ToArray();
    }

    /// <summary>Independent reference: element i of chunk c is ((x_c + x_{c+1}) + …) over ranks mod world.</summary>
    private static float[] Reference(float[][] x, int count)
    {
        int world = x.Length;
        var r = new float[count];
        int baseLen = count / world, rem = count % world, start = 0;
        for (int c = 0; c < world; c++)
        {
            int len = baseLen + (c < rem ? 1 : 0);
            for (int i = start; i < start + len; i++)
            {
                float acc = x[c][i];
                for (int k = 1; k < world; k++) acc += x[(c + k) % world][i];
                r[i] = acc;
            }
            start += len;
        }
        return r;
    }

    internal static readonly byte[] Key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);

    private static async Task<float[][]> RunRing(float[][] inputs, long generation = 1)
    {
        int world = inputs.Length;
        var listeners = Enumerable.Range(0, world).Select(_ => RingListener.Start()).ToArray();
        try
        {
            var eps = listeners.Select(l => l.EndPoint).ToArray();
            var data = inputs.Select(a => (float[])a.Clone()).ToArray();
            var tasks = Enumerable.Range(0, world).Select(rank => Task.Run(async () =>
            {
                using var ring = await TcpRingAllReduce.ConnectAsync(listeners[rank], rank, eps, generation, Key, TimeSpan.FromSeconds(20));
                Assert.Equal(world, ring.WorldSize);
                ring.AllReduceSum(GradientBucket.Host(data[rank]));
            })).ToArray();
            var all = Task.WhenAll(tasks);
            if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(40))) != all) throw new TimeoutException("ring all-reduce did not finish in 40 s");
            await all;
            return data;
        }
        finally
        {
            foreach (var l in listeners) l.Dispose();
        }
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(2, 7)]
    [InlineData(3, 10)]
    [InlineData(4, 1001)]
    [InlineData(4, 3)]     // fewer elements than ranks: empty chunks
    [InlineData(3, 600_001)] // several streaming segments per chunk, not divisible by 3
    public async Task Every_rank_gets_the_bit_identical_fixed_order_sum(int world, int count)
    {
        var x = Inputs(world, count, seed: world * 1000 + count);
        var got = await RunRing(x);
        var want = Reference(x, count);
        for (int r = 0; r < world; r++)
        {
            Assert.Equal(count, got[r].Length);
            for (int i = 0; i < count; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[r][i]),
                    $"rank {r} element {i}: {got[r][i]:R} != reference {want[i]:R}");
        }
    }

    [Fact]
    public async Task Integer_valued_inputs_sum_exactly()
    {
        int world = 3, count = 17;
        var x = Enumerable.Range(0, world).Select(r => Enumerable.Range(0, count).Select(i => (float)(r * 100 + i)).ToArray()).ToArray();
        var got = await RunRing(x);
        for (int i = 0; i < count; i++) Assert.Equal(300 + 3 * i, got[1][i]);
    }

    [Fact]
    public async Task A_missing_peer_fails_formation_with_a_clear_error_within_the_timeout()
    {
        using var l0 = RingListener.Start();
        using var l1 = RingListener.Start();
        var eps = new[] { l0.EndPoint, l1.EndPoint };
        var e = await Assert.ThrowsAsync<AllReduceException>(() =>
            TcpRingAllReduce.ConnectAsync(l0, 0, eps, 1, Key, TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        Assert.Contains("rank 1", e.Message);
    }

    [Fact]
    public void Checksum_sees_a_single_flipped_bit()
    {
        var a = Enumerable.Range(0, 1000).Select(i => i * 0.37f).ToArray();
        var b = (float[])a.Clone();
        b[500] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(b[500]) ^ 1);
        Assert.Equal(LoraChecksum.Of(a), LoraChecksum.Of((float[])a.Clone()));
        Assert.NotEqual(LoraChecksum.Of(a), LoraChecksum.Of(b));
    }

    [Fact]
    public void Nccl_backend_all_reduces_on_one_rank_or_skips_without_libnccl()
    {
        if (!NcclAllReduce.IsAvailable(out var reason)) Assert.Skip(reason);
        // NCCL present: the id round-trips through the control message bytes and the version is sane
        var id = NcclAllReduce.CreateUniqueId();
        Assert.Equal(NcclUniqueId.Size, id.Length);
        Assert.Equal(id, NcclUniqueId.FromBytes(id).ToBytes());
        Assert.True(NcclAllReduce.Version() >= 20000, "NCCL 2.x expected");
    }

    /// <summary>
    /// NCCL_COMM_ID would make NCCL's rendezvous a fixed address guarded by a public constant: a worker with it set is
    /// not NCCL-capable (it reports no NCCL, so its groups use the authenticated ring), whatever its hardware.
    /// </summary>
    [Fact]
    public void A_worker_with_NCCL_COMM_ID_set_does_not_offer_NCCL_and_says_why()
    {
        var env = new Dictionary<string, string> { ["NCCL_COMM_ID"] = "10.0.0.1:29500" };
        var backends = new RealAllReduceBackends(environment: k => env.GetValueOrDefault(k));
        Assert.False(backends.NcclUsable);
        Assert.Contains("NCCL_COMM_ID", backends.NcclReason);
        Assert.Null(RealAllReduceBackends.UnsafeNcclEnvironment(_ => null));
        Assert.Null(RealAllReduceBackends.UnsafeNcclEnvironment(_ => ""));
    }

    [Fact]
    public void Nccl_one_rank_communicator_reduces_a_cuda_bucket_through_the_worker_backends_or_skips()
    {
        var backends = new RealAllReduceBackends();
        if (!backends.NcclUsable) Assert.Skip($"no NCCL on this machine: {backends.NcclReason}");
        var values = Enumerable.Range(0, 1000).Select(i => (i - 500) * 0.25f).ToArray();
        using var t = torch.tensor(values, device: torch.CUDA);
        using var comm = backends.JoinNccl(backends.CreateNcclId(), 0, 1, generation: 1, "cuda");
        Assert.True(comm.AcceptsDeviceMemory);
        comm.AllReduceSum(GradientBucket.Device(NativeTensor.DataPointer(t), t.numel()));
        // one rank: the sum is the input itself, read back from the device after the reduce
        Assert.Equal(values, t.cpu().data<float>().ToArray());
        Assert.Throws<AllReduceException>(() => comm.AllReduceSum(GradientBucket.Host(values)));
    }

    [Fact]
    public async Task Nccl_two_ranks_on_two_gpus_sum_known_values_or_skip()
    {
        var backends = new RealAllReduceBackends();
        if (!backends.NcclUsable) Assert.Skip($"no NCCL on this machine: {backends.NcclReason}");
        if (torch.cuda.device_count() < 2) Assert.Skip($"two GPUs needed, {torch.cuda.device_count()} present");
        var id = backends.CreateNcclId();
        var got = await Task.WhenAll(Enumerable.Range(0, 2).Select(rank => Task.Factory.StartNew(() =>
        {
            var device = $"cuda:{rank}";
            using var t = torch.tensor(Enumerable.Range(0, 100).Select(i => (float)(i + 1000 * rank)).ToArray(), device: new torch.Device(device));
            using var comm = backends.JoinNccl(id, rank, 2, generation: 1, device);
            comm.AllReduceSum(GradientBucket.Device(NativeTensor.DataPointer(t), t.numel()));
            return t.cpu().data<float>().ToArray();
        }, TaskCreationOptions.LongRunning)));
        var want = Enumerable.Range(0, 100).Select(i => (float)(2 * i + 1000)).ToArray();
        Assert.Equal(want, got[0]);
        Assert.Equal(want, got[1]);
    }
}
