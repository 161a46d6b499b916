namespace HiggsCluster.Training.Generation;

/// <summary>
/// What to say and how: the text, an optional scene description (upstream's system message), and optionally a
/// reference clip with its transcript whose voice is cloned.
/// </summary>
public sealed record GenerationRequest(string Text, string? Scene = null, string? ReferenceAudio = null, string? ReferenceText = null)
{
    /// <summary>A bad request (empty text, unreadable reference clip …) named by its field.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Text)) throw new GenerationException("--text", "is empty: give the words to speak");
        if ((ReferenceAudio is null) != (ReferenceText is null))
            throw new GenerationException(ReferenceAudio is null ? "--reference-audio" : "--reference-text",
                "a voice clone needs both the reference clip and its transcript");
        if (ReferenceAudio is { } r && !File.Exists(r)) throw new GenerationException("--reference-audio", $"file not found: {r}");
        if (ReferenceText is { } t && string.IsNullOrWhiteSpace(t)) throw new GenerationException("--reference-text", "is empty");
    }
}

public sealed class GenerationException(string field, string message) : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
}
