using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Data;

/// <summary>
/// One item of a message's content, as upstream's dataclasses (boson_multimodal/data_types.py) hold it.
/// <see cref="Type"/> is free text as upstream: "text" and "audio" are acted on, anything else is ignored by prepare.
/// </summary>
public abstract record ChatContent(string Type);

public sealed record TextContent(string Text, string Type = "text") : ChatContent(Type);

/// <summary>
/// An audio item. <see cref="AudioUrl"/> is kept verbatim (it is what the goldens and upstream report);
/// <see cref="ResolvedPath"/> is the file to read: an absolute url as is, a relative one against the manifest's folder
/// (null when the entry did not come from a manifest file, or the url is empty / a URI).
///
/// Upstream parses entries with dacite strict=True, so an extra key in an audio object rejects the whole entry; we accept
/// exactly one extension, <see cref="LabelUrlKey"/>: a separate audio whose codes are this segment's loss targets (the
/// seed pipeline's per-audio label content). Without it a segment's labels are its own codes. Which audios are loss
/// targets at all is derived by <see cref="ChatMLPreparer"/>, see <see cref="PreparedSample.AudioLabelContents"/>.
/// </summary>
public sealed record AudioContent(
    string AudioUrl,
    string? RawAudio = null,
    double? Offset = null,
    double? Duration = null,
    long? RowId = null,
    string Type = "audio") : ChatContent(Type)
{
    public string? ResolvedPath { get; init; }

    /// <summary>The manifest key of the label audio extension.</summary>
    public const string LabelUrlKey = "audio_label_url";

    /// <summary>Optional label audio (verbatim url); its codes replace this segment's own codes as labels.</summary>
    public string? LabelUrl { get; init; }

    /// <summary><see cref="LabelUrl"/> resolved like <see cref="ResolvedPath"/>.</summary>
    public string? ResolvedLabelPath { get; init; }
    /// <summary>The decoded <see cref="RawAudio"/> (an audio file's bytes), or null when the entry carries none.</summary>
    public byte[]? RawAudioBytes()
    {
        if (string.IsNullOrEmpty(RawAudio)) return null;
        try { return Convert.FromBase64String(RawAudio); }
        catch (FormatException e)
        {
            throw new FormatException($"raw_audio of the audio content '{AudioUrl}' is not valid base64: {e.Message}", e);
        }
    }

    /// <summary>Upstream's dataclass fields with their defaults filled in, as the prepare goldens record them.</summary>
    public JsonObject ToJson() => new()
    {
        ["type"] = Type,
        ["audio_url"] = AudioUrl,
        ["raw_audio"] = RawAudio,
        ["offset"] = Offset,
        ["duration"] = Duration,
        ["row_id"] = RowId,
    };
}

public static class ChatRoles
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";

    /// <summary>
    /// Roles the template handles. Upstream would accept any string, but audio in another role gets no placeholder
    /// tokens while still being appended to audio_contents, which desynchronises audio indices, so others are refused.
    /// </summary>
    public static bool IsKnown(string role) => role is System or User or Assistant;
}

/// <summary>A message; <see cref="Content"/> is already normalised to a list (a plain string becomes one TextContent).</summary>
public sealed record ChatMessage(string Role, IReadOnlyList<ChatContent> Content, string? Recipient = null);

/// <summary>A parsed manifest entry (upstream ChatMLSample), plus the top-level keys upstream drops, kept raw.</summary>
public sealed record ChatMLSample(
    IReadOnlyList<ChatMessage> Messages,
    long? StartIndex = null,
    JsonObject? Misc = null,
    string? Speaker = null)
{
    /// <summary>Top-level keys other than messages/start_index/misc/speaker (upstream drops them silently).</summary>
    public JsonObject? Extra { get; init; }
}
