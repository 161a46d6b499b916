using Akka.Actor;
using Akka.Cluster;
using HiggsCluster.Messages;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// Joins the seeds once a seed's <see cref="RejoinGateActor"/> says this node's address is free (see
/// <see cref="RejoinGate"/>). A seed that does not answer cannot hold the join back: at a cluster's first start the
/// seeds come up together, and Akka's own join retries take over. A seed's "wait" holds it back for at most
/// <paramref name="longest"/>, after which Akka's rules decide alone.
/// </summary>
public static class JoinWhenAddressFree
{
    public static async Task Run(ActorSystem system, IReadOnlyList<Address> seeds, TimeSpan longest, TextWriter log)
    {
        var cluster = Cluster.Get(system);
        var self = cluster.SelfAddress;
        var others = seeds.Where(s => !s.Equals(self)).ToList();
        // a node that is the first seed forms the cluster; Akka's rules cover it
        if (others.Count == 0 || seeds[0].Equals(self)) { cluster.JoinSeedNodes(seeds); return; }
        var query = new RejoinQuery(self.ToString(), cluster.SelfUniqueAddress.Uid);
        var deadline = DateTime.UtcNow + longest;
        bool held = false;
        string? said = null;
        while (!system.WhenTerminated.IsCompleted)
        {
            RejoinAnswer? answer = null;
            foreach (var seed in others)
            {
                try
                {
                    answer = await system.ActorSelection(new RootActorPath(seed) / "user" / RejoinGateActor.Name)
                        .Ask<RejoinAnswer>(query, TimeSpan.FromSeconds(2));
                    break;
                }
                catch (AskTimeoutException) { }
                catch (ActorNotFoundException) { }
            }
            if (answer is { Free: true } || (answer is null && !held)) break;
            if (DateTime.UtcNow > deadline)
            {
                log.WriteLine($"higgs node: joining although a seed still says: {answer?.Reason ?? "no answer"} (waited {longest.TotalSeconds:0} s)");
                break;
            }
            if (answer is not null)
            {
                held = true;
                if (answer.Reason != said) log.WriteLine($"higgs node: waiting to join: {said = answer.Reason}");
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
        if (!system.WhenTerminated.IsCompleted) cluster.JoinSeedNodes(seeds);
    }
}
