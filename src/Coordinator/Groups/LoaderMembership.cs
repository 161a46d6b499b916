using System.Collections.Immutable;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>What the cluster said about one member, as the coordinator needs it (no Akka types: tested without actors).</summary>
public abstract record MemberSeen(string Address)
{
    /// <summary>The member is Up (joined, or seen at start).</summary>
    public sealed record Up(string Address, bool IsLoader) : MemberSeen(Address);
    /// <summary>The failure detector lost it; it may come back.</summary>
    public sealed record Unreachable(string Address) : MemberSeen(Address);
    /// <summary>The failure detector hears it again; <paramref name="IsUpLoader"/>: a loader whose status is still Up.</summary>
    public sealed record Reachable(string Address, bool IsUpLoader) : MemberSeen(Address);
    /// <summary>Removed from the cluster for good (left or downed).</summary>
    public sealed record Removed(string Address) : MemberSeen(Address);
}

/// <summary>
/// The loaders the coordinator plans batches on: Up members with the loader role that are reachable. An unreachable
/// loader is dropped at once (its batches are re-planned on the others); one that becomes reachable again is planned
/// on again. Without that last rule a loader that only missed heartbeats on a loaded machine stayed forgotten, and once
/// the other loader died the run waited for loaders forever (the chaos stall of issue 18).
/// </summary>
public sealed record LoaderMembership(ImmutableSortedSet<string> LoadersUp)
{
    public static LoaderMembership Empty { get; } = new(ImmutableSortedSet.Create<string>(StringComparer.Ordinal));

    /// <summary>The loaders after <paramref name="e"/>, and whether they changed (the shell broadcasts only then).</summary>
    public (LoaderMembership Next, bool Changed) Evolve(MemberSeen e)
    {
        var next = e switch
        {
            MemberSeen.Up { IsLoader: true } up => LoadersUp.Add(up.Address),
            MemberSeen.Reachable { IsUpLoader: true } back => LoadersUp.Add(back.Address),
            MemberSeen.Unreachable or MemberSeen.Removed => LoadersUp.Remove(e.Address),
            _ => LoadersUp,
        };
        return ReferenceEquals(next, LoadersUp) || next.SetEquals(LoadersUp) ? (this, false) : (new LoaderMembership(next), true);
    }
}
