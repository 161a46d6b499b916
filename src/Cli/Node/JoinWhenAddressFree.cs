using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using HiggsCluster.Messages;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// Joins the seeds once a seed's <see cref="RejoinGateActor"/> says this node's address is free (see
/// <see cref="RejoinGate"/>). A seed that does not answer cannot hold the join back: at a cluster's first start the
/// seeds come up together, and Akka's own join retries take over. A seed's "wait" holds it back for at most
/// <see cref="NodeOptions.RejoinWait"/>, after which Akka's rules decide alone. The first seed in the list first finds
/// out whether a cluster already exists (<see cref="FirstSeedJoin"/>).
/// </summary>
public static class JoinWhenAddressFree
{
    private static readonly TimeSpan AskFor = TimeSpan.FromSeconds(2);

    public static async Task Run(ActorSystem system, IReadOnlyList<Address> seeds, NodeOptions options, TextWriter log)
    {
        var cluster = Cluster.Get(system);
        var self = cluster.SelfAddress;
        var others = seeds.Where(s => !s.Equals(self)).ToList();
        if (others.Count == 0) { cluster.JoinSeedNodes(seeds); return; }
        var query = new RejoinQuery(self.ToString(), cluster.SelfUniqueAddress.Uid);
        IReadOnlyList<Address> joinList = seeds;
        if (seeds[0].Equals(self))
        {
            switch (await FirstSeedStep(system, others, query, options, log))
            {
                case FirstSeedJoin.Step.FormOrJoin: cluster.JoinSeedNodes(seeds); return;
                case FirstSeedJoin.Step.JoinOthers: joinList = others; break;
                default:
                    // the silence outlasted the join timeout: the same remedy as a join nobody accepted
                    await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClusterJoinUnsuccessfulReason.Instance);
                    return;
            }
        }
        var deadline = DateTime.UtcNow + options.RejoinWait;
        bool held = false;
        string? said = null;
        while (!system.WhenTerminated.IsCompleted)
        {
            RejoinAnswer? answer = null;
            foreach (var seed in others)
            {
                answer = await AskGate(system, seed, query);
                if (answer is not null) break;
            }
            if (answer is { Free: true } || (answer is null && !held)) break;
            if (DateTime.UtcNow > deadline)
            {
                log.WriteLine($"higgs node: joining although a seed still says: {answer?.Reason ?? "no answer"} (waited {options.RejoinWait.TotalSeconds:0} s)");
                break;
            }
            if (answer is not null)
            {
                held = true;
                if (answer.Reason != said) log.WriteLine($"higgs node: waiting to join: {said = answer.Reason}");
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
        if (!system.WhenTerminated.IsCompleted) cluster.JoinSeedNodes(joinList);
    }

    /// <summary>Asks the other seeds until <see cref="FirstSeedJoin.Decide"/> settles or the join timeout passes (then AskAgain).</summary>
    private static async Task<FirstSeedJoin.Step> FirstSeedStep(ActorSystem system, IReadOnlyList<Address> others, RejoinQuery query,
        NodeOptions options, TextWriter log)
    {
        var deadline = DateTime.UtcNow + options.JoinTimeout;
        bool told = false;
        while (!system.WhenTerminated.IsCompleted)
        {
            var probes = await Task.WhenAll(others.Select(s => Probe(system, s, query)));
            var step = FirstSeedJoin.Decide(probes, options.Incarnation);
            var silent = string.Join(", ", others.Where((_, i) => probes[i] == FirstSeedJoin.Probe.Silent));
            if (step == FirstSeedJoin.Step.FormOrJoin && silent.Length > 0)
                log.WriteLine($"higgs node: forming or joining the cluster although seed(s) {silent} accept connections and have not answered " +
                              $"for {FirstSeedJoin.SilentIncarnations} incarnations");
            if (step != FirstSeedJoin.Step.AskAgain) return step;
            if (!told)
            {
                told = true;
                log.WriteLine($"higgs node: first seed waiting: seed(s) {silent} accept connections but do not answer; " +
                              "not forming a second cluster beside one they may belong to");
            }
            if (DateTime.UtcNow > deadline) return step;
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
        return FirstSeedJoin.Step.FormOrJoin;
    }

    private static async Task<FirstSeedJoin.Probe> Probe(ActorSystem system, Address seed, RejoinQuery query)
    {
        var answer = await AskGate(system, seed, query);
        if (answer is not null) return answer.SeedIsMember ? FirstSeedJoin.Probe.Member : FirstSeedJoin.Probe.NotMember;
        if (seed.Host is null || seed.Port is null) return FirstSeedJoin.Probe.Closed;
        // whether anything listens there at all: a seed that is not running cannot hold a cold start back
        using var tcp = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await tcp.ConnectAsync(seed.Host, seed.Port.Value, cts.Token);
            return FirstSeedJoin.Probe.Silent;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return FirstSeedJoin.Probe.Closed;
        }
    }

    private static async Task<RejoinAnswer?> AskGate(ActorSystem system, Address seed, RejoinQuery query)
    {
        try
        {
            return await system.ActorSelection(new RootActorPath(seed) / "user" / RejoinGateActor.Name).Ask<RejoinAnswer>(query, AskFor);
        }
        catch (AskTimeoutException) { return null; }
        catch (ActorNotFoundException) { return null; }
    }
}
