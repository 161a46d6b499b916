using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// The command host under connection floods: idle sockets are dropped after the authentication deadline and never
/// take the slots of clients that authenticate, and one peer address cannot hold more than its share. 127.0.0.2 is a
/// second peer address on the loopback interface.
/// </summary>
[Trait("Category", "Cli")]
[Trait("Category", "Adversarial")]
public sealed class CommandHostFloodTests : IDisposable
{
    private static readonly IPAddress OtherPeer = IPAddress.Parse("127.0.0.2");
    private readonly TempDir _dir = new();
    private readonly List<Socket> _sockets = new();

    private async Task<Socket> Open(IPAddress from, int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(s);
        s.Bind(new IPEndPoint(from, 0));
        await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return s;
    }

    /// <summary>A request from <paramref name="from"/>; returns the host's frames once it hangs up (or after 10 s).</summary>
    private async Task<string> Request(IPAddress from, int port, params string[] argv)
    {
        var s = await Open(from, port);
        await s.SendAsync(Encoding.UTF8.GetBytes(Wire.EncodeRequest(new Wire.Request(CliHost.Token, argv, false)) + "\n"), SocketFlags.None);
        return await ReadAll(s, TimeSpan.FromSeconds(10));
    }

    private static async Task<string> ReadAll(Socket s, TimeSpan within)
    {
        var got = new MemoryStream();
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(within);
        try
        {
            int n;
            while ((n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token)) > 0) got.Write(buf, 0, n);
        }
        catch (OperationCanceledException) { got.Write("<no hang-up>"u8); }
        catch (SocketException) { }
        return Encoding.UTF8.GetString(got.ToArray());
    }

    [Theory(Timeout = 90_000)]
    [InlineData("127.0.0.2")] // the flood comes from another address than the clients
    [InlineData("127.0.0.1")] // and from the clients' own address
    public async Task An_idle_connection_flood_leaves_every_client_answered_and_is_dropped_after_the_deadline(string flooder)
    {
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path });
        var from = IPAddress.Parse(flooder);
        var flood = new List<Socket>();
        for (int i = 0; i < 150; i++) flood.Add(await Open(from, host.Port));
        // 12 clients, one after another, while the flood holds its sockets (before: 25 idle sockets kept 12 of 12 out for 25 s)
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 12; i++)
        {
            var reply = await Request(IPAddress.Loopback, host.Port, "node", "info");
            Assert.Contains("\"code\":0", reply);
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"12 clients took {clock.Elapsed} under the flood");
        // every idle socket is closed by the host: evicted at once, or at the 2 s authentication deadline
        var idle = await Task.WhenAll(flood.Select(s => ReadAll(s, TimeSpan.FromSeconds(8))));
        Assert.DoesNotContain(idle, r => r.Contains("<no hang-up>"));
        Assert.Contains(host.Refusals, l => l.Contains(flooder) && (l.Contains("not authenticated within 2 s") || l.Contains("too many unauthenticated")));
    }

    [Fact(Timeout = 90_000)]
    public async Task One_peer_cannot_hold_more_requests_than_its_limit_and_others_are_still_served()
    {
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path },
            limits: o => o with { MaxPerPeer = 2, MaxConnections = 4 });
        // two authenticated streams that stay open (cluster tail follows until the client hangs up)
        var streams = new List<Socket>();
        foreach (var _ in Enumerable.Range(0, 2))
        {
            var s = await Open(OtherPeer, host.Port);
            await s.SendAsync(Encoding.UTF8.GetBytes(Wire.EncodeRequest(new Wire.Request(CliHost.Token, new[] { "cluster", "tail" }, false)) + "\n"), SocketFlags.None);
            streams.Add(s);
        }
        await Task.Delay(1000, TestContext.Current.CancellationToken);
        var third = await Request(OtherPeer, host.Port, "node", "info");
        Assert.Contains("more than 2 requests at once from 127.0.0.2", third);
        Assert.Contains("\"code\":1", third);
        // another peer is served meanwhile
        Assert.Contains("\"code\":0", await Request(IPAddress.Loopback, host.Port, "node", "info"));
        Assert.Contains(host.Refusals, l => l.Contains("127.0.0.2") && l.Contains("more than 2 requests at once"));
        // the peer's slots come back when its streams end
        foreach (var s in streams) s.Close();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string again;
        do { await Task.Delay(300, TestContext.Current.CancellationToken); again = await Request(OtherPeer, host.Port, "node", "info"); }
        while (!again.Contains("\"code\":0") && DateTime.UtcNow < deadline);
        Assert.Contains("\"code\":0", again);
    }

    [Fact]
    public void The_gate_evicts_the_oldest_pending_connection_and_counts_slots_per_peer()
    {
        var gate = new ConnectionGate(maxPending: 3, maxPendingPerPeer: 2, maxActive: 3, maxActivePerPeer: 2);
        var dropped = new List<string>();
        var a1 = gate.Admit(IPAddress.Parse("10.0.0.1"), () => dropped.Add("a1"));
        var a2 = gate.Admit(IPAddress.Parse("10.0.0.1"), () => dropped.Add("a2"));
        var a3 = gate.Admit(IPAddress.Parse("10.0.0.1"), () => dropped.Add("a3")); // the peer's share is 2: a1 goes
        Assert.Equal(new[] { "a1" }, dropped);
        Assert.True(a1.Evicted);
        var b1 = gate.Admit(IPAddress.Parse("10.0.0.2"), () => dropped.Add("b1"));
        var c1 = gate.Admit(IPAddress.Parse("10.0.0.3"), () => dropped.Add("c1")); // the pool holds 3: the oldest (a2) goes
        Assert.Equal(new[] { "a1", "a2" }, dropped);
        Assert.False(a3.Evicted || b1.Evicted || c1.Evicted);
        foreach (var p in new[] { a3, b1, c1 }) gate.Leave(p);
        Assert.Equal(0, gate.PendingCount);

        var x = IPAddress.Parse("10.0.0.9");
        Assert.Null(gate.Enter(x));
        Assert.Null(gate.Enter(x));
        Assert.Contains("from 10.0.0.9", gate.Enter(x));
        Assert.Null(gate.Enter(IPAddress.Parse("10.0.0.8")));
        Assert.Contains("more than 3 requests at once", gate.Enter(IPAddress.Parse("10.0.0.7")));
        gate.Exit(x);
        Assert.Null(gate.Enter(IPAddress.Parse("::ffff:10.0.0.9"))); // the same peer written as IPv6
        Assert.Equal(3, gate.ActiveCount);
    }

    public void Dispose()
    {
        foreach (var s in _sockets) s.Dispose();
        _dir.Dispose();
    }
}
