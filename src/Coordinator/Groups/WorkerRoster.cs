using System.Collections.Immutable;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>
/// The workers the coordinator knows and the all-reduce group they form, as a pure value: registrations and losses
/// change the roster, a changed roster proposes a new group, and the group takes effect with the generation the shell
/// journalled for it (<see cref="Formed"/>). <typeparamref name="TRef"/> is how the shell reaches a worker (an actor
/// ref; tests use strings). Workers are keyed by their full actor path: several may live in one node.
/// </summary>
public sealed record WorkerRoster<TRef>(
    ImmutableSortedDictionary<string, (RegisterWorker Info, TRef Ref)> Workers,
    ImmutableArray<GroupMember> Group,
    long Generation)
{
    public static WorkerRoster<TRef> Empty { get; } =
        new(ImmutableSortedDictionary.Create<string, (RegisterWorker, TRef)>(StringComparer.Ordinal), ImmutableArray<GroupMember>.Empty, 0);

    /// <summary>A worker (re-)registered under <paramref name="key"/>; a re-registration replaces what it said before.</summary>
    public WorkerRoster<TRef> Register(string key, RegisterWorker info, TRef worker) => this with { Workers = Workers.SetItem(key, (info, worker)) };

    /// <summary>The worker at <paramref name="key"/> is gone (terminated); null when it was not known.</summary>
    public WorkerRoster<TRef>? Without(string key) => Workers.ContainsKey(key) ? this with { Workers = Workers.Remove(key) } : null;

    /// <summary>Every worker living in the node at <paramref name="address"/> is gone (the node left or is unreachable).</summary>
    public WorkerRoster<TRef>? WithoutNode(string address)
    {
        var gone = Workers.Keys.Where(k => k.StartsWith(address + "/", StringComparison.Ordinal)).ToList();
        return gone.Count == 0 ? null : this with { Workers = Workers.RemoveRange(gone) };
    }

    /// <summary>The group the workers known now form: ranks in key order.</summary>
    public ImmutableArray<GroupMember> Proposed =>
        Workers.Values.Select((w, i) => new GroupMember(i, w.Info.WorkerId, w.Info.RingHost, w.Info.RingPort)).ToImmutableArray();

    /// <summary>True when the proposed group differs from the current one: it needs a new generation.</summary>
    public bool NeedsRegroup => !Proposed.SequenceEqual(Group);

    /// <summary>
    /// The group of <paramref name="generation"/> broke (a member's communicator failed): it must be formed again, even
    /// with the same members. False for an older generation (already replaced) or no group.
    /// </summary>
    public bool MustReform(long generation) => generation == Generation && Group.Length > 0;

    /// <summary>The proposed group took effect as <paramref name="generation"/> (journalled by the shell first).</summary>
    public WorkerRoster<TRef> Formed(long generation) => generation <= Generation
        ? throw new ArgumentException($"worker group generation {generation} is not newer than {Generation}")
        : this with { Group = Proposed, Generation = generation };

    /// <summary>Generations handed out by earlier coordinators (journal replay): the next one must be newer still.</summary>
    public WorkerRoster<TRef> Recovered(long generation) => this with { Generation = Math.Max(Generation, generation) };

    /// <summary>The group's worker ids by rank.</summary>
    public string[] Members => Group.Select(p => p.WorkerId).ToArray();

    /// <summary>The worker an effect names, or the first one when it names none; default when it is not known.</summary>
    public TRef? WorkerFor(string? workerId) => Workers.Values
        .Where(w => workerId is null || w.Info.WorkerId == workerId).Select(w => w.Ref).FirstOrDefault();

    /// <summary>The workers of <paramref name="workerIds"/> that are known, with their keys.</summary>
    public IEnumerable<(string Key, TRef Ref)> Named(IEnumerable<string> workerIds)
    {
        var ids = workerIds.ToHashSet(StringComparer.Ordinal);
        return Workers.Where(w => ids.Contains(w.Value.Info.WorkerId)).Select(w => (w.Key, w.Value.Ref));
    }

    /// <summary>The workers in rank order of the proposed group (the order steps are handed out in).</summary>
    public IReadOnlyList<TRef> ByRank => Workers.Values.Select(w => w.Ref).ToList();

    /// <summary>
    /// The all-reduce backend of the current group for a run on <paramref name="device"/>: NCCL only when every rank
    /// said it can join (a member not registered any more counts as unable).
    /// </summary>
    public BackendChoice.Choice Backend(string? device) =>
        BackendChoice.Choose(device, Group.Select(p => Workers.Values.FirstOrDefault(w => w.Info.WorkerId == p.WorkerId).Info?.HasCuda ?? false).ToList());

    /// <summary>The roster as the command host shows it: every known worker, with its rank in the current group (-1: none).</summary>
    public WorkerEntry[] Entries() => Workers
        .Select(w => new WorkerEntry(w.Value.Info.WorkerId, w.Key, w.Value.Info.RingHost, w.Value.Info.RingPort, w.Value.Info.HasCuda,
            Members.AsSpan().IndexOf(w.Value.Info.WorkerId)))
        .ToArray();
}
