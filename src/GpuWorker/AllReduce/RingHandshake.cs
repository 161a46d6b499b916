using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// Mutual authentication of a ring connection with the generation's key (handed out by the coordinator over TLS
/// remoting): the listener sends a fresh nonce; the connecting rank answers with its hello (generation, rank, world),
/// its own nonce and an HMAC-SHA256 over both nonces and the hello; the listener, if that checks out, proves it holds the
/// key too with an HMAC over the same. Nonces make a recorded exchange useless on another connection.
/// </summary>
internal static class RingHandshake
{
    public const uint Magic = 0x48524E47; // "HRNG"
    public const int MinKeyBytes = 16;
    private const int NonceBytes = 16, MacBytes = 32, HeaderBytes = 20;
    private static readonly byte[] HelloLabel = Encoding.ASCII.GetBytes("higgs-ring-hello");
    private static readonly byte[] WelcomeLabel = Encoding.ASCII.GetBytes("higgs-ring-welcome");

    /// <summary>The connecting side. False when the peer is not a listener holding the key (or went away).</summary>
    public static async Task<bool> ConnectAsync(Socket s, byte[] key, long generation, int rank, int world, CancellationToken ct)
    {
        var challenge = new byte[4 + NonceBytes];
        if (!await ReceiveExactly(s, challenge, ct) || BinaryPrimitives.ReadUInt32LittleEndian(challenge) != Magic) return false;
        var listenerNonce = challenge.AsSpan(4).ToArray();
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(4), generation);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), rank);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), world);
        var myNonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var hello = Concat(header, myNonce, Mac(key, HelloLabel, listenerNonce, header, myNonce));
        await s.SendAsync(hello, SocketFlags.None, ct);
        var welcome = new byte[MacBytes];
        if (!await ReceiveExactly(s, welcome, ct)) return false;
        return CryptographicOperations.FixedTimeEquals(welcome, Mac(key, WelcomeLabel, myNonce, header, listenerNonce));
    }

    /// <summary>The listening side: null when the peer proved the key and is the expected predecessor, else why not.</summary>
    public static async Task<string?> AcceptAsync(Socket s, byte[] key, long generation, int prevRank, int world, CancellationToken ct)
    {
        var listenerNonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var challenge = new byte[4 + NonceBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(challenge, Magic);
        listenerNonce.CopyTo(challenge, 4);
        await s.SendAsync(challenge, SocketFlags.None, ct);
        var hello = new byte[HeaderBytes + NonceBytes + MacBytes];
        if (!await ReceiveExactly(s, hello, ct)) return "closed before its hello";
        var header = hello.AsSpan(0, HeaderBytes).ToArray();
        var theirNonce = hello.AsSpan(HeaderBytes, NonceBytes).ToArray();
        var mac = hello.AsSpan(HeaderBytes + NonceBytes).ToArray();
        if (!CryptographicOperations.FixedTimeEquals(mac, Mac(key, HelloLabel, listenerNonce, header, theirNonce)))
            return "failed authentication (not a member of this generation)";
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic) return "bad magic";
        long gen = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(4));
        int rank = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12)), w = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
        if (gen != generation || rank != prevRank || w != world)
            return $"is generation {gen} rank {rank}/{w}, expected generation {generation} rank {prevRank}/{world}";
        await s.SendAsync(Mac(key, WelcomeLabel, theirNonce, header, listenerNonce), SocketFlags.None, ct);
        return null;
    }

    private static byte[] Mac(byte[] key, byte[] label, byte[] a, byte[] header, byte[] b)
    {
        using var h = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        h.AppendData(label);
        h.AppendData(a);
        h.AppendData(header);
        h.AppendData(b);
        return h.GetHashAndReset();
    }

    private static byte[] Concat(params byte[][] parts)
    {
        var all = new byte[parts.Sum(p => p.Length)];
        int at = 0;
        foreach (var p in parts) { p.CopyTo(all, at); at += p.Length; }
        return all;
    }

    private static async Task<bool> ReceiveExactly(Socket s, byte[] buf, CancellationToken ct)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = await s.ReceiveAsync(buf.AsMemory(got), SocketFlags.None, ct);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }
}
