namespace HiggsCluster.Cli.Node;

/// <summary>
/// How the first seed in the list joins. Akka's rule is that the first seed forms a new cluster when no other seed
/// answers its join within the seed-node timeout. After a restart on the same port, a surviving seed can keep a broken
/// link to the dead incarnation's address and drop every answer to the new one; the first seed then forms a second
/// cluster beside the old one, with a second coordinator. So it first asks the other seeds' rejoin gates:
/// <list type="bullet">
/// <item>a seed that is a member means the cluster exists: join it like any other node, never form a new one;</item>
/// <item>seeds that are not members, or where nothing listens, mean a cold start: Akka's rule applies;</item>
/// <item>a seed that accepts connections but does not answer may be one with a broken link: ask again, and after the join
/// timeout start again as a new incarnation (whose new links work), until the silence has outlasted
/// <see cref="SilentIncarnations"/> incarnations; a seed that hangs for that long no longer holds the cluster back.</item>
/// </list>
/// </summary>
public static class FirstSeedJoin
{
    /// <summary>What one other seed said.</summary>
    public enum Probe
    {
        /// <summary>Its gate answered, and it is a member of a cluster.</summary>
        Member,
        /// <summary>Its gate answered, and it is not a member (it waits for the first seed, as at a cold start).</summary>
        NotMember,
        /// <summary>No answer, and nothing accepts a connection at its address: not running.</summary>
        Closed,
        /// <summary>No answer, but its port accepts connections.</summary>
        Silent,
    }

    public enum Step
    {
        /// <summary>Akka's rule: join a seed that answers the join, or form the cluster.</summary>
        FormOrJoin,
        /// <summary>Join the other seeds only; never form a cluster.</summary>
        JoinOthers,
        /// <summary>Ask the other seeds again.</summary>
        AskAgain,
    }

    /// <summary>Incarnations a silent seed may hold the first seed back (with the 40 s default join timeout, two minutes).</summary>
    public const int SilentIncarnations = 3;

    public static Step Decide(IReadOnlyCollection<Probe> others, int incarnation) =>
        others.Contains(Probe.Member) ? Step.JoinOthers
        : others.Contains(Probe.Silent) && incarnation < SilentIncarnations ? Step.AskAgain
        : Step.FormOrJoin;
}
