using System.Net;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>
/// Admission to the command host in two pools, so that connections which have not proved the token cannot lock out
/// those that have. Unauthenticated connections wait in a bounded pending pool (a deadline of their own drops them);
/// when the pool or one peer's share of it is full, the oldest pending connection is dropped to make room, so a flood
/// of idle sockets delays a real client by at most its own handshake. Authenticated requests take slots of a
/// separate pool, limited in total and per peer address.
/// </summary>
public sealed class ConnectionGate(int maxPending, int maxPendingPerPeer, int maxActive, int maxActivePerPeer)
{
    public sealed class Pending
    {
        internal Pending(IPAddress peer, Action drop) { Peer = peer; Drop = drop; }
        public IPAddress Peer { get; }
        internal Action Drop { get; }
        /// <summary>Dropped to make room for newer connections (rather than timed out).</summary>
        public bool Evicted { get; internal set; }
    }

    private readonly object _lock = new();
    private readonly LinkedList<Pending> _pending = new();
    private readonly Dictionary<IPAddress, int> _active = new();
    private int _activeTotal;

    public int PendingCount { get { lock (_lock) return _pending.Count; } }
    public int ActiveCount { get { lock (_lock) return _activeTotal; } }

    /// <summary>Admits a new unauthenticated connection; <paramref name="drop"/> is called if it is evicted later.</summary>
    public Pending Admit(IPAddress peer, Action drop)
    {
        var p = new Pending(Normal(peer), drop);
        var victims = new List<Pending>();
        lock (_lock)
        {
            var mine = _pending.Where(x => x.Peer.Equals(p.Peer)).ToList();
            for (int i = 0; i <= mine.Count - maxPendingPerPeer; i++) victims.Add(mine[i]);
            foreach (var v in victims) _pending.Remove(v);
            while (_pending.Count >= maxPending) { victims.Add(_pending.First!.Value); _pending.RemoveFirst(); }
            _pending.AddLast(p);
            foreach (var v in victims) v.Evicted = true;
        }
        foreach (var v in victims) v.Drop();
        return p;
    }

    /// <summary>The connection authenticated, failed or closed: it no longer counts as pending.</summary>
    public void Leave(Pending p)
    {
        lock (_lock) _pending.Remove(p);
    }

    /// <summary>Takes an authenticated slot; null when granted, else the refusal's reason.</summary>
    public string? Enter(IPAddress peer)
    {
        peer = Normal(peer);
        lock (_lock)
        {
            if (_activeTotal >= maxActive) return $"more than {maxActive} requests at once";
            int mine = _active.GetValueOrDefault(peer);
            if (mine >= maxActivePerPeer) return $"more than {maxActivePerPeer} requests at once from {peer}";
            _active[peer] = mine + 1;
            _activeTotal++;
            return null;
        }
    }

    public void Exit(IPAddress peer)
    {
        peer = Normal(peer);
        lock (_lock)
        {
            if (!_active.TryGetValue(peer, out var n)) return;
            if (n <= 1) _active.Remove(peer); else _active[peer] = n - 1;
            _activeTotal--;
        }
    }

    private static IPAddress Normal(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;
}
