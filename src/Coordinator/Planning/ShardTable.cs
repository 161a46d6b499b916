using System.Collections.Immutable;

namespace HiggsCluster.Coordinator.Planning;

/// <summary>
/// Which loader owns which manifest shard (sample id mod shard count). Rebalancing keeps every shard that can stay
/// where it is: only shards of departed loaders and the excess of over-full loaders move, to the under-full ones.
/// </summary>
public sealed record ShardTable(int ShardCount, long Generation, ImmutableSortedDictionary<int, string> Owner)
{
    public static ShardTable Empty(int shardCount) => shardCount > 0
        ? new(shardCount, 0, ImmutableSortedDictionary<int, string>.Empty)
        : throw new ArgumentException($"shard count must be positive, got {shardCount}");

    public static int ShardOfSample(long sampleId, int shardCount) => (int)(sampleId % shardCount);

    public string? OwnerOfSample(long sampleId) => Owner.GetValueOrDefault(ShardOfSample(sampleId, ShardCount));

    public ImmutableSortedDictionary<string, int[]> ByLoader() => Owner
        .GroupBy(kv => kv.Value, StringComparer.Ordinal)
        .ToImmutableSortedDictionary(g => g.Key, g => g.Select(kv => kv.Key).Order().ToArray(), StringComparer.Ordinal);

    public ShardTable Rebalance(IEnumerable<string> loadersUp)
    {
        var loaders = loadersUp.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (loaders.Count == 0)
            return Owner.IsEmpty ? this : this with { Generation = Generation + 1, Owner = ImmutableSortedDictionary<int, string>.Empty };

        var held = loaders.ToDictionary(l => l, l => Owner.Where(kv => kv.Value == l).Select(kv => kv.Key).Order().ToList(), StringComparer.Ordinal);
        int baseQuota = ShardCount / loaders.Count, rem = ShardCount % loaders.Count;
        // the +1 quotas go to the loaders already holding the most, so fewer shards move
        var quota = loaders.OrderByDescending(l => held[l].Count).ThenBy(l => l, StringComparer.Ordinal)
            .Select((l, i) => (l, q: baseQuota + (i < rem ? 1 : 0))).ToDictionary(x => x.l, x => x.q, StringComparer.Ordinal);

        var free = Enumerable.Range(0, ShardCount).Where(s => !Owner.TryGetValue(s, out var o) || !held.ContainsKey(o)).ToList();
        foreach (var l in loaders)
            while (held[l].Count > quota[l]) { free.Add(held[l][^1]); held[l].RemoveAt(held[l].Count - 1); }
        free.Sort();
        int next = 0;
        foreach (var l in loaders)
            while (held[l].Count < quota[l]) held[l].Add(free[next++]);

        var owner = held.SelectMany(kv => kv.Value.Select(s => (s, kv.Key))).ToImmutableSortedDictionary(x => x.s, x => x.Key);
        bool same = owner.Count == Owner.Count && owner.All(kv => Owner.TryGetValue(kv.Key, out var o) && o == kv.Value);
        return same ? this : this with { Generation = Generation + 1, Owner = owner };
    }
}
