using System.Security.Cryptography;
using System.Text;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>
/// The secret a run's TCP ring authenticates with in one generation, handed to its workers in the group message over
/// (TLS) remoting. Derived from a random secret of this coordinator process, so a resent group of the same generation
/// carries the same key, a new generation a new one, and nothing about it is journalled or guessable from outside.
/// </summary>
public static class RingKeys
{
    private static readonly byte[] Secret = RandomNumberGenerator.GetBytes(32);

    public static byte[] For(string runId, long generation) =>
        HMACSHA256.HashData(Secret, Encoding.UTF8.GetBytes($"ring\n{runId}\n{generation}"));
}
