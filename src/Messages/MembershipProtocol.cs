namespace HiggsCluster.Messages;

/// <summary>
/// A node that is about to join asks a seed whether its address is free: no member of the cluster at the same host:port
/// with another incarnation (UID), and every member has seen the latest membership. Sent before the node is a member.
/// </summary>
public sealed record RejoinQuery(string Address, long Uid) : IControlMessage;

/// <summary>
/// <paramref name="Free"/>: join now; otherwise ask again, <paramref name="Reason"/> says what it waits for.
/// <paramref name="SeedIsMember"/>: the answering seed is a member of a cluster (so a restarted first seed joins it rather
/// than forming another).
/// </summary>
public sealed record RejoinAnswer(bool Free, string Reason, bool SeedIsMember) : IControlMessage;
