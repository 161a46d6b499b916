using System.Text.Json;
using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Data;

/// <summary>
/// Converts one manifest entry (a JSON object) into a <see cref="ChatMLSample"/> with the rules of upstream's
/// <c>dacite.from_dict(ChatMLSample, strict=True, check_types=True)</c> (dacite 1.8):
/// unknown top-level keys are dropped (kept in <see cref="ChatMLSample.Extra"/>), unknown keys inside a message or a
/// content object refuse the entry, types are checked (an integer is accepted where a float is expected, not the
/// reverse), and a content object is tried as AudioContent first, then as TextContent.
/// On top of upstream it refuses what upstream would crash on or silently mangle later (see the Refuse calls).
/// </summary>
public static class ChatMLEntryParser
{
    private static readonly HashSet<string> MessageKeys = new(StringComparer.Ordinal) { "role", "content", "recipient" };
    private static readonly HashSet<string> AudioKeys = new(StringComparer.Ordinal) { "audio_url", "raw_audio", "offset", "duration", "row_id", "type" };
    private static readonly HashSet<string> TextKeys = new(StringComparer.Ordinal) { "text", "type" };

    private sealed class Refusal(string field, string message) : Exception(message)
    {
        public string Field { get; } = field;
    }

    /// <summary>Parses one entry; <paramref name="baseDir"/> resolves relative audio urls (null: leave unresolved).</summary>
    public static bool TryParse(JsonElement entry, int index, string? baseDir, out ChatMLSample? sample, out ManifestError? error)
    {
        try
        {
            sample = Parse(entry, baseDir);
            error = null;
            return true;
        }
        catch (Refusal r)
        {
            sample = null;
            error = new ManifestError(index, r.Field, r.Message);
            return false;
        }
    }

    /// <summary>Parses one entry or throws <see cref="ChatMLFormatException"/>.</summary>
    public static ChatMLSample ParseOrThrow(JsonElement entry, int index = 0, string? baseDir = null) =>
        TryParse(entry, index, baseDir, out var s, out var e) ? s! : throw new ChatMLFormatException(e!);

    private static ChatMLSample Parse(JsonElement entry, string? baseDir)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new Refusal("", $"an entry must be a JSON object, not {Kind(entry)}");
        JsonElement? messages = null, startIndex = null, misc = null, speaker = null;
        JsonObject? extra = null;
        foreach (var p in entry.EnumerateObject()) // a repeated key: the last one wins, as in Python's json
        {
            switch (p.Name)
            {
                case "messages": messages = p.Value; break;
                case "start_index": startIndex = p.Value; break;
                case "misc": misc = p.Value; break;
                case "speaker": speaker = p.Value; break;
                default:
                    extra ??= new JsonObject();
                    extra[p.Name] = JsonNode.Parse(p.Value.GetRawText());
                    break;
            }
        }
        if (messages is not { } msgs) throw new Refusal("messages", "missing (every entry needs a 'messages' list)");
        if (msgs.ValueKind != JsonValueKind.Array) throw new Refusal("messages", $"must be a list, not {Kind(msgs)}");

        var list = new List<ChatMessage>(msgs.GetArrayLength());
        int i = 0;
        foreach (var m in msgs.EnumerateArray()) list.Add(ParseMessage(m, $"messages[{i++}]", baseDir));

        long? start = null;
        if (startIndex is { ValueKind: not JsonValueKind.Null } si)
        {
            if (!IsInteger(si, out var v)) throw new Refusal("start_index", $"must be an integer or null, not {Kind(si)} {si.GetRawText()}");
            start = v;
        }
        JsonObject? miscObj = null;
        if (misc is { ValueKind: not JsonValueKind.Null } mi)
        {
            if (mi.ValueKind != JsonValueKind.Object) throw new Refusal("misc", $"must be an object or null, not {Kind(mi)}");
            miscObj = JsonNode.Parse(mi.GetRawText())!.AsObject();
        }
        string? spk = null;
        if (speaker is { ValueKind: not JsonValueKind.Null } sp)
        {
            if (sp.ValueKind != JsonValueKind.String) throw new Refusal("speaker", $"must be a string or null, not {Kind(sp)} {sp.GetRawText()}");
            spk = sp.GetString();
        }
        return new ChatMLSample(list, start, miscObj, spk) { Extra = extra };
    }

    private static ChatMessage ParseMessage(JsonElement m, string path, string? baseDir)
    {
        if (m.ValueKind != JsonValueKind.Object) throw new Refusal(path, $"a message must be an object, not {Kind(m)}");
        JsonElement? role = null, content = null, recipient = null;
        foreach (var p in m.EnumerateObject())
        {
            if (!MessageKeys.Contains(p.Name))
                throw new Refusal($"{path}.{p.Name}", "unknown key in a message (allowed: role, content, recipient)");
            if (p.Name == "role") role = p.Value;
            else if (p.Name == "content") content = p.Value;
            else recipient = p.Value;
        }
        if (role is not { } r) throw new Refusal($"{path}.role", "missing");
        if (r.ValueKind != JsonValueKind.String) throw new Refusal($"{path}.role", $"must be a string, not {Kind(r)}");
        var roleName = r.GetString()!;
        if (!ChatRoles.IsKnown(roleName))
            throw new Refusal($"{path}.role", $"unknown role '{roleName}' (expected system, user or assistant)");
        if (content is not { } c) throw new Refusal($"{path}.content", "missing");

        var items = new List<ChatContent>();
        switch (c.ValueKind)
        {
            case JsonValueKind.String: items.Add(new TextContent(c.GetString()!)); break;
            case JsonValueKind.Object: items.Add(ParseContentObject(c, $"{path}.content", baseDir)); break;
            case JsonValueKind.Array:
                int k = 0;
                foreach (var e in c.EnumerateArray())
                {
                    var itemPath = $"{path}.content[{k++}]";
                    items.Add(e.ValueKind switch
                    {
                        JsonValueKind.String => new TextContent(e.GetString()!),
                        JsonValueKind.Object => ParseContentObject(e, itemPath, baseDir),
                        _ => throw new Refusal(itemPath, $"a content item must be a string or an object, not {Kind(e)}"),
                    });
                }
                break;
            default:
                throw new Refusal($"{path}.content", $"must be a string, a text/audio object or a list of them, not {Kind(c)}");
        }

        string? rec = null;
        if (recipient is { ValueKind: not JsonValueKind.Null } re)
        {
            if (re.ValueKind != JsonValueKind.String) throw new Refusal($"{path}.recipient", $"must be a string or null, not {Kind(re)}");
            rec = re.GetString();
            // upstream asserts this inside prepare_chatml_sample and then crashes in its own error handler
            if (rec!.Length > 0 && roleName != ChatRoles.Assistant)
                throw new Refusal($"{path}.recipient", $"a recipient is only allowed on assistant messages (role is '{roleName}')");
        }
        return new ChatMessage(roleName, items, rec);
    }

    private static ChatContent ParseContentObject(JsonElement o, string path, string? baseDir)
    {
        var asAudio = TryAudio(o, path, baseDir, out var audioWhyNot);
        if (asAudio != null)
        {
            // upstream would read .text of this AudioContent and crash
            if (asAudio.Type == "text") throw new Refusal($"{path}.type", "an object with audio_url cannot have type 'text'");
            return asAudio;
        }
        var asText = TryText(o, out var textWhyNot);
        if (asText != null)
        {
            // upstream would append this TextContent to audio_contents and emit audio placeholders for it
            if (asText.Type == "audio") throw new Refusal($"{path}.audio_url", "an object with type 'audio' needs an audio_url");
            return asText;
        }
        throw new Refusal(path, $"matches neither an audio content ({audioWhyNot}) nor a text content ({textWhyNot})");
    }

    private static AudioContent? TryAudio(JsonElement o, string path, string? baseDir, out string whyNot)
    {
        string? url = null, raw = null, type = "audio", labelUrl = null;
        double? offset = null, duration = null;
        long? rowId = null;
        bool hasUrl = false;
        foreach (var p in o.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "audio_url":
                    if (v.ValueKind != JsonValueKind.String) { whyNot = $"audio_url must be a string, not {Kind(v)}"; return null; }
                    url = v.GetString(); hasUrl = true; break;
                case "raw_audio":
                    if (v.ValueKind is not (JsonValueKind.String or JsonValueKind.Null)) { whyNot = $"raw_audio must be a base64 string or null, not {Kind(v)}"; return null; }
                    raw = v.ValueKind == JsonValueKind.Null ? null : v.GetString(); break;
                case "offset":
                case "duration":
                    double? d = null;
                    if (v.ValueKind != JsonValueKind.Null)
                    {
                        if (v.ValueKind != JsonValueKind.Number) { whyNot = $"{p.Name} must be a number or null, not {Kind(v)}"; return null; }
                        d = v.GetDouble();
                    }
                    if (p.Name == "offset") offset = d; else duration = d;
                    break;
                case "row_id":
                    if (v.ValueKind != JsonValueKind.Null)
                    {
                        if (!IsInteger(v, out var id)) { whyNot = $"row_id must be an integer or null, not {Kind(v)} {v.GetRawText()}"; return null; }
                        rowId = id;
                    }
                    else rowId = null;
                    break;
                case "type":
                    if (v.ValueKind != JsonValueKind.String) { whyNot = $"type must be a string, not {Kind(v)}"; return null; }
                    type = v.GetString()!; break;
                case AudioContent.LabelUrlKey:
                    if (v.ValueKind is not (JsonValueKind.String or JsonValueKind.Null)) { whyNot = $"{AudioContent.LabelUrlKey} must be a string or null, not {Kind(v)}"; return null; }
                    labelUrl = v.ValueKind == JsonValueKind.Null || v.GetString() is "" ? null : v.GetString(); break;
                default:
                    whyNot = $"unknown key '{p.Name}'";
                    return null;
            }
        }
        if (!hasUrl) { whyNot = "no audio_url"; return null; }
        whyNot = "";
        return new AudioContent(url!, raw, offset, duration, rowId, type)
        {
            ResolvedPath = Resolve(url!, baseDir),
            LabelUrl = labelUrl,
            ResolvedLabelPath = labelUrl is null ? null : Resolve(labelUrl, baseDir),
        };
    }

    private static TextContent? TryText(JsonElement o, out string whyNot)
    {
        string? text = null, type = "text";
        foreach (var p in o.EnumerateObject())
        {
            var v = p.Value;
            if (p.Name == "text")
            {
                if (v.ValueKind != JsonValueKind.String) { whyNot = $"text must be a string, not {Kind(v)}"; return null; }
                text = v.GetString();
            }
            else if (p.Name == "type")
            {
                if (v.ValueKind != JsonValueKind.String) { whyNot = $"type must be a string, not {Kind(v)}"; return null; }
                type = v.GetString()!;
            }
            else { whyNot = $"unknown key '{p.Name}'"; return null; }
        }
        if (text == null) { whyNot = "no text"; return null; }
        whyNot = "";
        return new TextContent(text, type);
    }

    private static string? Resolve(string url, string? baseDir)
    {
        if (url.Length == 0 || url.Contains("://", StringComparison.Ordinal)) return null;
        if (Path.IsPathRooted(url)) return url;
        return baseDir == null ? null : Path.GetFullPath(Path.Combine(baseDir, url));
    }

    /// <summary>A JSON integer literal: Python's json gives a float for anything with a fraction or an exponent.</summary>
    private static bool IsInteger(JsonElement v, out long value)
    {
        value = 0;
        if (v.ValueKind != JsonValueKind.Number) return false;
        var raw = v.GetRawText();
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') >= 0) return false;
        return v.TryGetInt64(out value);
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => IsInteger(e, out _) ? "an integer" : "a float",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };
}
