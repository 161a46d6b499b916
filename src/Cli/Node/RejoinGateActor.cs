using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using HiggsCluster.Messages;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// Answers <see cref="RejoinQuery"/> from a node about to join (see <see cref="RejoinGate"/>). A node may only ask
/// about its own address: the one it sends from, so nobody can get another member downed through it.
/// </summary>
public sealed class RejoinGateActor : ReceiveActor
{
    public const string Name = "rejoin-gate";

    private readonly HashSet<string> _removed = new(StringComparer.Ordinal);

    public RejoinGateActor()
    {
        var cluster = Cluster.Get(Context.System);
        Receive<ClusterEvent.MemberRemoved>(e => _removed.Add(e.Member.Address.ToString()));
        Receive<ClusterEvent.CurrentClusterState>(_ => { });
        Receive<RejoinQuery>(q =>
        {
            var view = ViewOf(cluster, _removed);
            if (Sender.Path.Address.ToString() != q.Address)
            {
                Sender.Tell(new RejoinAnswer(false, $"a node at {Sender.Path.Address} asked about {q.Address}", view.SelfIsMember));
                return;
            }
            var d = RejoinGate.Decide(view, q.Address, q.Uid);
            if (d.DownOld is { } old)
                cluster.Down(Address.Parse(old.Address));
            Sender.Tell(new RejoinAnswer(d.Free, d.Reason, view.SelfIsMember));
        });
    }

    protected override void PreStart() => Cluster.Get(Context.System).Subscribe(Self, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    private static RejoinGate.View ViewOf(Cluster cluster, IReadOnlySet<string> removed)
    {
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.UniqueAddress).ToHashSet();
        var members = state.Members
            .Select(m => new RejoinGate.Member(m.Address.ToString(), m.UniqueAddress.Uid, m.Status == MemberStatus.Down, !unreachable.Contains(m.UniqueAddress)))
            .ToList();
        bool selfIsMember = cluster.SelfMember.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Leaving;
        return new RejoinGate.View(selfIsMember, members, state.SeenBy.Select(a => a.ToString()).ToHashSet(), removed);
    }
}

public static class RejoinGateHosting
{
    public static AkkaConfigurationBuilder AddRejoinGate(this AkkaConfigurationBuilder b) =>
        b.WithActors((system, _) => system.ActorOf(Props.Create(() => new RejoinGateActor()), RejoinGateActor.Name));
}
