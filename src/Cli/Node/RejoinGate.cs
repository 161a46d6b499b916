namespace HiggsCluster.Cli.Node;

/// <summary>
/// When a node restarted on the same host:port may join. Akka lets a new incarnation join as soon as the leader has
/// removed the old one, but the other members learn of that removal (and quarantine the old UID) a gossip round or
/// more later; a new incarnation that reaches them first gets its connection folded into the old incarnation's, which
/// the quarantine then closes, and the two never hear each other again (they down each other as unreachable). So the
/// seed answers "free" only when no member holds the address and every reachable member has seen the latest membership.
/// </summary>
public static class RejoinGate
{
    /// <summary>A member as the answering node sees it.</summary>
    public sealed record Member(string Address, long Uid, bool Down, bool Reachable);

    /// <summary>
    /// The answering node's view: whether it is a member itself, the members, who has seen the latest gossip, and the
    /// addresses of members removed since it started (only a node coming back to one of those needs the others to have
    /// seen its removal; a first join never waits for gossip, so a cluster's start is not slowed).
    /// </summary>
    public sealed record View(bool SelfIsMember, IReadOnlyList<Member> Members, IReadOnlySet<string> SeenBy, IReadOnlySet<string> Removed);

    /// <summary>The answer, and the old incarnation to down (as Akka's own join would) when it is still up.</summary>
    public sealed record Decision(bool Free, string Reason, Member? DownOld = null);

    public static Decision Decide(View view, string address, long uid)
    {
        // a seed that is not a member cannot tell; Akka's own join rules apply
        if (!view.SelfIsMember) return new(true, "the seed is not a member yet");
        var holder = view.Members.FirstOrDefault(m => m.Address == address);
        if (holder is not null && holder.Uid == uid) return new(true, "already a member");
        if (holder is not null)
            return holder.Down
                ? new(false, $"the old incarnation (uid {holder.Uid}) is down and not yet removed")
                : new(false, $"the old incarnation (uid {holder.Uid}) is still a member; downing it", holder);
        if (!view.Removed.Contains(address)) return new(true, "free");
        var behind = view.Members.Where(m => m.Reachable && !m.Down && !view.SeenBy.Contains(m.Address)).Select(m => m.Address).ToList();
        return behind.Count == 0
            ? new(true, "free")
            : new(false, $"{behind.Count} member(s) have not seen the latest membership yet ({string.Join(", ", behind)})");
    }
}
