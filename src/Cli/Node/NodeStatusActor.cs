using Akka.Actor;
using Akka.Cluster;
using HiggsCluster.Messages;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// Tracks which members are Up, answers <see cref="GetNodeStatus"/>, and prints one machine-readable line per change
/// (<c>HIGGS_NODE self=… up=N</c>) for scripts and the multi-process tests.
/// </summary>
public sealed class NodeStatusActor : ReceiveActor
{
    public const string Name = "node-status";
    private readonly SortedSet<string> _up = new(StringComparer.Ordinal);

    public NodeStatusActor(TextWriter? statusOut)
    {
        var cluster = Cluster.Get(Context.System);
        var self = cluster.SelfAddress.ToString();
        void Print()
        {
            if (statusOut is null) return;
            lock (statusOut) { statusOut.WriteLine($"HIGGS_NODE self={self} up={_up.Count} members={string.Join(',', _up)}"); statusOut.Flush(); }
        }
        Receive<ClusterEvent.MemberUp>(e => { _up.Add(e.Member.Address.ToString()); Print(); });
        Receive<ClusterEvent.MemberRemoved>(e => { if (_up.Remove(e.Member.Address.ToString())) Print(); });
        Receive<ClusterEvent.MemberExited>(e => { if (_up.Remove(e.Member.Address.ToString())) Print(); });
        Receive<ClusterEvent.MemberLeft>(e => { if (_up.Remove(e.Member.Address.ToString())) Print(); });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<GetNodeStatus>(_ => Sender.Tell(new NodeStatus(self, cluster.SelfRoles.ToArray(), _up.Count, _up.ToArray())));
    }

    protected override void PreStart() =>
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}
