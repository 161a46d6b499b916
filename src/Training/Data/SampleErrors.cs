namespace HiggsCluster.Training.Data;

/// <summary>A manifest entry that cannot become a training sample: names the entry, the field and the reason.</summary>
public sealed class SampleException(long entryIndex, string field, string message, Exception? inner = null)
    : Exception($"entry {entryIndex}: {field}: {message}", inner)
{
    public long EntryIndex { get; } = entryIndex;
    public string Field { get; } = field;
    public string Reason { get; } = message;
    public EntryProblem ToProblem() => new(EntryIndex, Field, Reason);
}
