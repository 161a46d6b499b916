using System.Net;
using System.Net.Sockets;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// TCP ports for the nodes that this process starts on this machine (tests, `higgs train --gpus`' worker processes,
/// the benches), without the bind-then-release race. Asking the OS for port 0 and closing it
/// hands out a port from the ephemeral range, which the OS may give to any other socket (an outgoing connection of a
/// node, another test) before the node binds it. Here ports come from below the ephemeral range (Linux: from 32768),
/// which the OS never hands out by itself: each test process claims a block of <see cref="BlockSize"/> ports by holding
/// an exclusive lock file for its lifetime (so concurrent test runs on one machine get disjoint blocks), and hands the
/// block's ports out once each. A port something else already listens on is skipped. A node whose port is given by the
/// user (`higgs node --port`) never comes here.
/// </summary>
public static class LocalPorts
{
    public const int First = 20000, Last = 32000, BlockSize = 200;
    private static readonly object Gate = new();
    // held until the process exits (the OS drops the locks then): a handed-out port stays this process's while it lives
    private static readonly List<FileStream> Held = new();
    private static int _next, _end;

    /// <summary>A port no other process using this class on this machine is given.</summary>
    public static int Next() => Block(1);

    /// <summary>The first of <paramref name="count"/> consecutive ports, all free and all this caller's.</summary>
    public static int Block(int count)
    {
        lock (Gate)
        {
            while (true)
            {
                if (Held.Count == 0 || _next + count > _end) Claim();
                int first = _next;
                _next += count;
                if (Enumerable.Range(first, count).All(Bindable)) return first;
            }
        }
    }

    private static void Claim()
    {
        var dir = Path.Combine(Path.GetTempPath(), "higgs-local-ports");
        Directory.CreateDirectory(dir);
        int blocks = (Last - First) / BlockSize;
        // start at a block chosen by the process id, so concurrent runs rarely contend for the same lock file
        int start = Environment.ProcessId % blocks;
        for (int i = 0; i < blocks; i++)
        {
            int b = (start + i) % blocks;
            int lo = First + b * BlockSize;
            if (Held.Any(h => h.Name.EndsWith($"{Path.DirectorySeparatorChar}{lo}.lock", StringComparison.Ordinal))) continue;
            try
            {
                // FileShare.None is an exclusive flock on Unix: another process cannot open it while this one lives
                Held.Add(new FileStream(Path.Combine(dir, $"{lo}.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
                (_next, _end) = (lo, lo + BlockSize);
                return;
            }
            catch (IOException) { } // another process holds it
        }
        throw new InvalidOperationException($"no free block of {BlockSize} local ports in {First}..{Last}");
    }

    private static bool Bindable(int port)
    {
        try
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException) { return false; }
    }
}
