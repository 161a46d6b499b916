namespace HiggsCluster.Training.Data;

/// <summary>A manifest entry that cannot become a training sample: names the entry, the field and the reason.</summary>
public sealed class SampleException(long entryIndex, string field, string message, Exception? inner = null)
    : Exception($"entry {entryIndex}: {field}: {message}", inner)
{
    public long EntryIndex { get; } = entryIndex;
    public string Field { get; } = field;
    public string Reason { get; } = message;
    public EntryProblem ToProblem() => new(EntryIndex, Field, Reason);

    /// <summary>
    /// Whether <paramref name="e"/> is about one entry's data (I/O, permissions, decoding, overflow, a native tensor
    /// error): those are reported and the entry skipped, so one bad file never fails a run. Cancellation and the
    /// process running out of managed memory are not, and still stop the run.
    /// </summary>
    public static bool IsPerEntry(Exception e) => e is not (OperationCanceledException or OutOfMemoryException or ThreadInterruptedException);

    /// <summary>An unexpected per-entry failure as a one-line reason (native errors carry a multi-line trace).</summary>
    public static SampleException Wrap(long entryIndex, string field, Exception e)
    {
        var first = (e.Message ?? "").Split('\n', 2)[0].Trim();
        return new SampleException(entryIndex, field, $"cannot use it ({e.GetType().Name}: {first})", e);
    }
}
