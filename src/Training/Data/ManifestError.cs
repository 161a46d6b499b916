namespace HiggsCluster.Training.Data;

/// <summary>Why one manifest entry was refused. <see cref="Field"/> is a path such as <c>messages[1].content[0].audio_url</c> ("" = the entry itself).</summary>
public sealed record ManifestError(int Index, string Field, string Message, long? Line = null)
{
    public override string ToString() =>
        $"entry {Index}{(Line is { } l ? $" (line {l})" : "")}{(Field.Length > 0 ? $", field '{Field}'" : "")}: {Message}";
}

/// <summary>Thrown when a single entry is refused (e.g. when preparing one entry outside a manifest).</summary>
public sealed class ChatMLFormatException(ManifestError error) : FormatException(error.ToString())
{
    public ManifestError Error { get; } = error;
}

/// <summary>One manifest entry: a parsed sample, or the reason it was skipped.</summary>
public sealed record ManifestItem(int Index, ChatMLSample? Sample, ManifestError? Error)
{
    public bool IsError => Error != null;
}
