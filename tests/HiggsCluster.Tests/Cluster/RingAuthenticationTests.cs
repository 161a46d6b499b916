using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Security.Cryptography;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The TCP ring takes only connections that prove the generation's key; strangers neither join nor stall it.</summary>
[Trait("Category", "Cluster")]
[Trait("Category", "Adversarial")]
public sealed class RingAuthenticationTests
{
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);

    /// <summary>Reads until the server closes (0) or 10 s pass; returns every byte it sent.</summary>
    private static async Task<(byte[] Sent, bool Closed)> Drain(Socket s)
    {
        var got = new List<byte>();
        var buf = new byte[256];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                int n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token);
                if (n == 0) return (got.ToArray(), true);
                got.AddRange(buf.AsSpan(0, n).ToArray());
            }
        }
        catch (OperationCanceledException) { return (got.ToArray(), false); }
        catch (SocketException) { return (got.ToArray(), true); }
    }

    [Fact(Timeout = 60_000)]
    public async Task Strangers_that_connect_idle_or_send_a_forged_hello_are_dropped_and_the_ring_still_forms()
    {
        var ct = TestContext.Current.CancellationToken;
        using var l0 = RingListener.Start();
        using var l1 = RingListener.Start();
        var eps = new[] { l0.EndPoint, l1.EndPoint };
        var refused = new ConcurrentQueue<string>();

        // strangers first: one idles, one answers the challenge with a well-formed hello under the wrong key
        using var idle = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await idle.ConnectAsync(l0.EndPoint, ct);
        using var forger = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await forger.ConnectAsync(l0.EndPoint, ct);
        var r0 = TcpRingAllReduce.ConnectAsync(l0, 0, eps, 3, Key, TimeSpan.FromSeconds(20), ct, refused.Enqueue);
        var challenge = new byte[20];
        Assert.Equal(20, await forger.ReceiveAsync(challenge, SocketFlags.None, ct));
        var hello = new byte[20 + 16 + 32];
        BitConverter.GetBytes(0x48524E47u).CopyTo(hello, 0);
        BitConverter.GetBytes(3L).CopyTo(hello, 4);
        BitConverter.GetBytes(1).CopyTo(hello, 12);
        BitConverter.GetBytes(2).CopyTo(hello, 16);
        RandomNumberGenerator.Fill(hello.AsSpan(20)); // a guessed "MAC"
        await forger.SendAsync(hello, SocketFlags.None, ct);
        var forgerSaw = await Drain(forger);
        Assert.True(forgerSaw.Closed, "the forged hello was not dropped");
        Assert.Empty(forgerSaw.Sent); // no welcome: it learns nothing

        // the real rank 1 joins with the key while the idle stranger still holds its connection
        var r1 = TcpRingAllReduce.ConnectAsync(l1, 1, eps, 3, Key, TimeSpan.FromSeconds(20), ct, refused.Enqueue);
        using var ring0 = await r0;
        using var ring1 = await r1;
        var a = new float[] { 1, 2, 3 };
        var b = new float[] { 10, 20, 30 };
        await Task.WhenAll(Task.Run(() => ring0.AllReduceSum(GradientBucket.Host(a)), ct), Task.Run(() => ring1.AllReduceSum(GradientBucket.Host(b)), ct));
        Assert.Equal(new float[] { 11, 22, 33 }, a);
        Assert.Equal(a, b);

        var idleSaw = await Drain(idle);
        Assert.True(idleSaw.Closed, "the idle stranger kept its connection after the ring formed");
        Assert.Contains(refused, r => r.Contains("failed authentication"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Ranks_with_different_keys_do_not_form_a_ring()
    {
        var ct = TestContext.Current.CancellationToken;
        using var l0 = RingListener.Start();
        using var l1 = RingListener.Start();
        var eps = new[] { l0.EndPoint, l1.EndPoint };
        var r0 = TcpRingAllReduce.ConnectAsync(l0, 0, eps, 1, Key, TimeSpan.FromSeconds(3), ct);
        var r1 = TcpRingAllReduce.ConnectAsync(l1, 1, eps, 1, RandomNumberGenerator.GetBytes(32), TimeSpan.FromSeconds(3), ct);
        var e0 = await Assert.ThrowsAsync<AllReduceException>(() => r0);
        var e1 = await Assert.ThrowsAsync<AllReduceException>(() => r1);
        Assert.Contains("key", e0.Message + e1.Message);
    }

    [Fact]
    public async Task A_ring_without_a_key_is_refused()
    {
        using var l0 = RingListener.Start();
        var e = await Assert.ThrowsAsync<AllReduceException>(() =>
            TcpRingAllReduce.ConnectAsync(l0, 0, new[] { l0.EndPoint, l0.EndPoint }, 1, Array.Empty<byte>(), TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        Assert.Contains("no ring key", e.Message);
    }
}
