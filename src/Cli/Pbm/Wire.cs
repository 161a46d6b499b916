using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HiggsCluster.Cli.Pbm;

/// <summary>
/// The command host's wire format. The client sends ONE line: a JSON object {"token","argv","json"} (argv is
/// palette, command, then words and --options as typed). The host answers with JSON lines ("frames") and closes:
/// {"k":"out","text":…} a line of human output, {"k":"data","data":…} a structured result (sent instead of "out"
/// when the request asked for JSON), and exactly one final {"k":"end","code":N,"error":…}.
/// </summary>
public static class Wire
{
    public const int DefaultPort = 9110;
    public const int DefaultMaxRequestBytes = 1024 * 1024;

    public sealed record Request(string? Token, string[] Argv, bool Json);

    public static string EncodeRequest(Request r) =>
        new JsonObject { ["token"] = r.Token, ["argv"] = new JsonArray(r.Argv.Select(a => (JsonNode?)a).ToArray()), ["json"] = r.Json }.ToJsonString();

    /// <summary>Parses the request line; a malformed one is an <see cref="FormatException"/> whose message is the reason.</summary>
    /// <summary>
    /// Caps on the fields of one request, checked before anything else reads them: the line's byte limit bounds the
    /// total, these keep one field from being a megabyte of argv or token that every later check walks and logs.
    /// </summary>
    public const int MaxArgs = 512, MaxArgChars = 65536, MaxTokenChars = 1024;

    public static Request DecodeRequest(string line)
    {
        JsonNode? n;
        try { n = JsonNode.Parse(line); }
        catch (JsonException) { throw new FormatException("request is not a JSON object"); }
        if (n is not JsonObject o) throw new FormatException("request is not a JSON object");
        if (o["argv"] is not JsonArray a || a.Count == 0) throw new FormatException("request has no argv");
        if (a.Count > MaxArgs) throw new FormatException($"request argv has {a.Count} items, over the limit of {MaxArgs} (request argv items)");
        var argv = a.Select(x => x is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new FormatException("argv items must be strings")).ToArray();
        for (int i = 0; i < argv.Length; i++)
            if (argv[i].Length > MaxArgChars)
                throw new FormatException($"request argv[{i}] has {argv[i].Length} characters, over the limit of {MaxArgChars} (request argv item size)");
        string? token = o["token"] is JsonValue t && t.TryGetValue<string>(out var ts) ? ts : null;
        if (token is { Length: > MaxTokenChars })
            throw new FormatException($"request token has {token.Length} characters, over the limit of {MaxTokenChars} (request token size)");
        bool json = o["json"] is JsonValue j && j.TryGetValue<bool>(out var jb) && jb;
        return new Request(token, argv, json);
    }

    public static string Out(string text) => new JsonObject { ["k"] = "out", ["text"] = text }.ToJsonString();
    public static string Data(JsonNode data) => new JsonObject { ["k"] = "data", ["data"] = data.DeepClone() }.ToJsonString();
    public static string End(int code, string? error) => new JsonObject { ["k"] = "end", ["code"] = code, ["error"] = error }.ToJsonString();

    /// <summary>
    /// Reads one '\n'-terminated line of at most <paramref name="maxBytes"/> bytes; null at end of stream, and an
    /// <see cref="InvalidDataException"/> when the line is longer (the caller refuses the request).
    /// </summary>
    public static async Task<string?> ReadLineAsync(Stream s, int maxBytes, CancellationToken ct)
    {
        var buf = new MemoryStream();
        var one = new byte[4096];
        while (true)
        {
            int n = await s.ReadAsync(one.AsMemory(0, one.Length), ct);
            if (n == 0) return buf.Length == 0 ? null : Encoding.UTF8.GetString(buf.ToArray());
            int nl = Array.IndexOf(one, (byte)'\n', 0, n);
            int take = nl >= 0 ? nl : n;
            if (buf.Length + take > maxBytes) throw new InvalidDataException($"request larger than {maxBytes} bytes");
            buf.Write(one, 0, take);
            if (nl >= 0) return Encoding.UTF8.GetString(buf.ToArray());
        }
    }
}
