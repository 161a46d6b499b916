using System.Collections.Immutable;

namespace HiggsCluster.DataLoaderNode.Serving;

public readonly record struct BatchKey(long GlobalStep, int Micro)
{
    public override string ToString() => $"step {GlobalStep} micro {Micro}";
}

public enum BatchStatus { Planned, Building, Ready, InFlight }

public abstract record WindowCommand;
public sealed record PlanBatch(BatchKey Key) : WindowCommand;
public sealed record BatchBuilt(BatchKey Key) : WindowCommand;
public sealed record BatchBuildFailed(BatchKey Key, string Reason) : WindowCommand;
public sealed record Demand(int Credits) : WindowCommand;
public sealed record Acknowledge(BatchKey Key) : WindowCommand;
/// <summary>The worker group changed: everything planned for the old one is dropped (and released); credits stay.</summary>
public sealed record ResetWindow : WindowCommand;

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
/// </summary>
public sealed record ServingWindow(int Capacity, int Credits, ImmutableList<(BatchKey Key, BatchStatus Status)> Entries)
{
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
            case PlanBatch p:
                if (Find(p.Key) >= 0) fx.Add(new ProtocolError($"{p.Key} planned twice"));
                else s = s with { Entries = Entries.Add((p.Key, BatchStatus.Planned)) };
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
            case Demand d:
                if (d.Credits <= 0) fx.Add(new ProtocolError($"demand of {d.Credits} credits"));
                else s = s with { Credits = Math.Min(Capacity, Credits + d.Credits) };
                break;
            case Acknowledge a:
                {
                    int i = Find(a.Key);
                    if (i < 0 || Entries[i].Status != BatchStatus.InFlight) fx.Add(new ProtocolError($"ack for {a.Key}, which is not in flight"));
                    else { s = s with { Entries = Entries.RemoveAt(i) }; fx.Add(new ReleaseBatch(a.Key)); }
                    break;
                }
            case ResetWindow:
                foreach (var e in Entries.Where(e => e.Status != BatchStatus.Planned)) fx.Add(new ReleaseBatch(e.Key));
                // credits are the worker's free slots: they survive (a worker drops and acks what it held)
                s = s with { Entries = Entries.Clear() };
                break;
        }
        return (s.Pump(fx), fx);
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
        for (int i = 0; i < entries.Count && credits > 0; i++)
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
