using System.Collections.Immutable;

namespace HiggsCluster.DataLoaderNode.Serving;

public readonly record struct BatchKey(long GlobalStep, int Micro)
{
    public override string ToString() => $"step {GlobalStep} micro {Micro}";
}

public enum BatchStatus { Planned, Building, Ready, InFlight }

public abstract record WindowCommand;
/// <summary>A batch of worker group <see cref="Generation"/>; a newer generation than the window's resets it first.</summary>
public sealed record PlanBatch(BatchKey Key, long Generation) : WindowCommand;
public sealed record BatchBuilt(BatchKey Key) : WindowCommand;
public sealed record BatchBuildFailed(BatchKey Key, string Reason) : WindowCommand;
/// <summary>
/// Free slots of the rank's worker in group <see cref="Generation"/>. A newer generation is a new consumer (the rank may
/// be another worker now): its credits replace the old consumer's, which died with it.
/// </summary>
public sealed record Demand(int Credits, long Generation) : WindowCommand;
/// <summary>The consumer of <see cref="Generation"/> holds the batch; an ack from another group's consumer releases nothing.</summary>
public sealed record Acknowledge(BatchKey Key, long Generation) : WindowCommand;
/// <summary>The worker group changed: everything planned for an older one is dropped (and released).</summary>
public sealed record ResetWindow(long Generation) : WindowCommand;

public abstract record WindowEffect;
public sealed record BuildBatch(BatchKey Key) : WindowEffect;
public sealed record SendBatch(BatchKey Key) : WindowEffect;
public sealed record ReleaseBatch(BatchKey Key) : WindowEffect;
public sealed record ReportBatchFailed(BatchKey Key, string Reason) : WindowEffect;
public sealed record ProtocolError(string Reason) : WindowEffect;

/// <summary>
/// One worker rank's serving window on a loader. At most <see cref="Capacity"/> batches are being built, ready or
/// unacknowledged at once (bounded memory); a batch is sent only against a credit from the worker (pull) and in plan
/// order; it is released only when acknowledged. Nothing is dropped silently: failures and protocol errors are effects.
/// Ranks are renumbered per worker group, so batches go out only when the credits come from the consumer of the
/// generation they were planned for: a rank's old worker (perhaps dead) never receives the new group's batches, and a
/// new worker's demand that overtook the new plan waits for it.
/// </summary>
public sealed record ServingWindow(int Capacity, int Credits, ImmutableList<(BatchKey Key, BatchStatus Status)> Entries)
{
    /// <summary>The worker group the entries were planned for.</summary>
    public long PlanGeneration { get; init; } = long.MinValue;
    /// <summary>The worker group whose consumer the credits belong to.</summary>
    public long ConsumerGeneration { get; init; } = long.MinValue;

    public static ServingWindow Create(int capacity) => capacity is >= 1 and <= 8
        ? new(capacity, 0, ImmutableList<(BatchKey, BatchStatus)>.Empty)
        : throw new ArgumentOutOfRangeException(nameof(capacity), $"serving window must hold 1..8 batches, got {capacity}");

    public int Held => Entries.Count(e => e.Status != BatchStatus.Planned);

    public (ServingWindow State, IReadOnlyList<WindowEffect> Effects) Handle(WindowCommand cmd)
    {
        var fx = new List<WindowEffect>();
        var s = this;
        switch (cmd)
        {
            case PlanBatch p when p.Generation < PlanGeneration:
                fx.Add(new ProtocolError($"{p.Key} planned for generation {p.Generation} after generation {PlanGeneration}"));
                break;
            case PlanBatch p:
                if (p.Generation > PlanGeneration) s = Reset(p.Generation, fx);
                if (s.Find(p.Key) >= 0) fx.Add(new ProtocolError($"{p.Key} planned twice"));
                else s = s with { Entries = s.Entries.Add((p.Key, BatchStatus.Planned)) };
                break;
            case BatchBuilt b:
                s = Transition(b.Key, BatchStatus.Building, BatchStatus.Ready, fx);
                break;
            case BatchBuildFailed f:
                {
                    int i = Find(f.Key);
                    if (i < 0 || Entries[i].Status != BatchStatus.Building) fx.Add(new ProtocolError($"build failure for {f.Key}, which was not being built"));
                    else { s = s with { Entries = Entries.RemoveAt(i) }; fx.Add(new ReportBatchFailed(f.Key, f.Reason)); }
                    break;
                }
            case Demand d when d.Credits <= 0:
                fx.Add(new ProtocolError($"demand of {d.Credits} credits"));
                break;
            case Demand d when d.Generation < ConsumerGeneration:
                break; // a late demand of a consumer that has been replaced
            case Demand d when d.Generation > ConsumerGeneration:
                s = s with { Credits = Math.Min(Capacity, d.Credits), ConsumerGeneration = d.Generation };
                break;
            case Demand d:
                s = s with { Credits = Math.Min(Capacity, Credits + d.Credits) };
                break;
            case Acknowledge a when a.Generation != PlanGeneration:
                break; // released by the reset that dropped its generation
            case Acknowledge a:
                {
                    int i = Find(a.Key);
                    if (i < 0 || Entries[i].Status != BatchStatus.InFlight) fx.Add(new ProtocolError($"ack for {a.Key}, which is not in flight"));
                    else { s = s with { Entries = Entries.RemoveAt(i) }; fx.Add(new ReleaseBatch(a.Key)); }
                    break;
                }
            case ResetWindow r when r.Generation > PlanGeneration:
                s = Reset(r.Generation, fx);
                break;
            case ResetWindow:
                break;
        }
        return (s.Pump(fx), fx);
    }

    /// <summary>Credits stay: they belong to the consumer, who may already be of the new generation.</summary>
    private ServingWindow Reset(long generation, List<WindowEffect> fx)
    {
        foreach (var e in Entries.Where(e => e.Status != BatchStatus.Planned)) fx.Add(new ReleaseBatch(e.Key));
        return this with { Entries = Entries.Clear(), PlanGeneration = generation };
    }

    private int Find(BatchKey k) => Entries.FindIndex(e => e.Key == k);

    private ServingWindow Transition(BatchKey k, BatchStatus from, BatchStatus to, List<WindowEffect> fx)
    {
        int i = Find(k);
        if (i < 0 || Entries[i].Status != from) { fx.Add(new ProtocolError($"{k} is not {from}")); return this; }
        return this with { Entries = Entries.SetItem(i, (k, to)) };
    }

    private ServingWindow Pump(List<WindowEffect> fx)
    {
        var entries = Entries.ToBuilder();
        int credits = Credits;
        int held = entries.Count(e => e.Status != BatchStatus.Planned);
        for (int i = 0; i < entries.Count && held < Capacity; i++)
            if (entries[i].Status == BatchStatus.Planned)
            {
                entries[i] = (entries[i].Key, BatchStatus.Building);
                fx.Add(new BuildBatch(entries[i].Key));
                held++;
            }
        // in plan order: the first batch not yet in flight must be ready before anything behind it is sent
        for (int i = 0; i < entries.Count && credits > 0 && ConsumerGeneration == PlanGeneration; i++)
        {
            if (entries[i].Status == BatchStatus.InFlight) continue;
            if (entries[i].Status != BatchStatus.Ready) break;
            entries[i] = (entries[i].Key, BatchStatus.InFlight);
            fx.Add(new SendBatch(entries[i].Key));
            credits--;
        }
        return this with { Credits = credits, Entries = entries.ToImmutable() };
    }
}
