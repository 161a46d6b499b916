using System.Security.Cryptography;
using System.Text;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>
/// The secret a run's TCP ring authenticates with in one generation, handed to its workers in the group message over
/// (TLS) remoting. Derived from a random secret of one coordinator incarnation, so a resent group of the same generation
/// carries the same key, a new generation a new one, and nothing about it is journalled or guessable from outside.
/// A successor coordinator has its own secret: a worker still holding its predecessor's group cannot form a ring with
/// the successor's members, and generations never repeat across coordinators (<see cref="WorkerRoster{TRef}.Recovered"/>),
/// so the next group it receives is newer and replaces the old one.
/// </summary>
public sealed class RingKeys
{
    private readonly byte[] _secret;

    private RingKeys(byte[] secret) => _secret = secret;

    /// <summary>The keys of a new coordinator incarnation.</summary>
    public static RingKeys Create() => new(RandomNumberGenerator.GetBytes(32));

    public byte[] For(string runId, long generation) =>
        HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes($"ring\n{runId}\n{generation}"));
}
