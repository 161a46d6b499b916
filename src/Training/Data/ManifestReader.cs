using System.Buffers;
using System.Text;
using System.Text.Unicode;
using System.Text.Json;

namespace HiggsCluster.Training.Data;

/// <summary>
/// Reads a ChatML manifest entry by entry, never holding more than one entry in memory:
/// a JSON array file (first non-blank byte '[') is walked with <see cref="Utf8JsonReader"/> over a growing buffer;
/// anything else is JSON Lines (one entry per non-blank line).
/// Each entry yields a parsed sample or a <see cref="ManifestError"/> with its index and line; a bad entry never stops
/// the read: a line with invalid UTF-8 or JSON, a malformed array element, an entry over the size limit are each one
/// error, and the reader resynchronises at the next line or element. Only a truncated array ends it early.
/// Relative audio urls are resolved against the manifest's folder.
///
/// Entry format (upstream ChatMLSample, parsed by <see cref="ChatMLEntryParser"/>):
/// <code>
/// { "messages": [ { "role": "system"|"user"|"assistant",
///                   "content": "text" | {"type":"text","text":...} | {"type":"audio","audio_url":...} | [ any of these ],
///                   "recipient": "name" (assistant only, optional) } ],
///   "start_index": int|null,   // assistant turns at or after it are trained (null: all)
///   "speaker": string|null,    // else misc.speaker
///   "misc": object|null,
///   ...other top-level keys are ignored }
/// audio object: { "type": "audio", "audio_url": path (relative to the manifest's folder, or absolute),
///                 "raw_audio": base64|null, "offset": seconds|null, "duration": seconds|null, "row_id": int|null }
/// </code>
/// No other key is allowed inside a message or an audio object (upstream refuses the entry). Which audios are loss
/// targets is not a field: it follows from the roles and start_index (<see cref="PreparedSample.AudioLabelContents"/>).
/// </summary>
public static class ManifestReader
{
    private const int ChunkSize = 1 << 16;

    /// <summary>
    /// The longest manifest entry (a JSONL line or an array element) read: a longer one is an error for that entry
    /// alone, skipped without being held in memory. 32 MiB holds a minute of 48 kHz stereo audio as raw_audio base64.
    /// </summary>
    public const int DefaultMaxEntryBytes = 32 << 20;
    /// <summary>Bounds of <c>data.max_entry_bytes</c>: a usable entry needs more than 1 KiB rarely, and one entry is held whole in memory.</summary>
    public const int MinMaxEntryBytes = 1 << 10, MaxMaxEntryBytes = 1 << 30;

    public static IEnumerable<ManifestItem> Read(string path, int maxEntryBytes = DefaultMaxEntryBytes)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"manifest not found: {path}", path);
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return ReadIterator(path, baseDir, maxEntryBytes);
    }

    private static IEnumerable<ManifestItem> ReadIterator(string path, string baseDir, int maxEntryBytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkSize, FileOptions.SequentialScan);
        foreach (var item in Read(stream, baseDir, maxEntryBytes)) yield return item;
    }

    /// <summary>Reads a manifest from a stream; <paramref name="baseDir"/> resolves relative audio urls (null: unresolved).</summary>
    public static IEnumerable<ManifestItem> Read(Stream stream, string? baseDir, int maxEntryBytes = DefaultMaxEntryBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxEntryBytes);
        var first = PeekFirstByte(stream, out var prefix);
        var source = new PrefixedStream(prefix, stream);
        return first == (byte)'[' ? ReadArray(source, baseDir, maxEntryBytes) : ReadLines(source, baseDir, maxEntryBytes);
    }

    private static int PeekFirstByte(Stream stream, out byte[] consumed)
    {
        var seen = new List<byte>();
        int b;
        while ((b = stream.ReadByte()) >= 0)
        {
            seen.Add((byte)b);
            bool bom = seen.Count <= 3 && b is 0xEF or 0xBB or 0xBF;
            if (!bom && b is not (' ' or '\t' or '\r' or '\n')) break;
        }
        // a UTF-8 byte-order mark is dropped: Utf8JsonReader does not accept one
        int skip = seen.Count >= 3 && seen[0] == 0xEF && seen[1] == 0xBB && seen[2] == 0xBF ? 3 : 0;
        consumed = seen.Skip(skip).ToArray();
        return b;
    }

    private static IEnumerable<ManifestItem> ReadLines(Stream stream, string? baseDir, int maxEntryBytes)
    {
        var bytes = new ManifestBytes(stream);
        int index = 0;
        while (true)
        {
            long lineNo = bytes.Line;
            int end, scanned = 0;
            bool tooLong = false;
            // one line, never more than the limit in memory: past it, its bytes are dropped up to the newline
            while ((end = bytes.Unread[scanned..].IndexOf((byte)'\n')) < 0)
            {
                scanned = bytes.Count;
                if (scanned > maxEntryBytes) { tooLong = true; bytes.Advance(scanned); scanned = 0; }
                if (!bytes.Fill()) break;
            }
            if (end >= 0) end += scanned;
            if (tooLong)
            {
                bytes.Advance(end >= 0 ? end + 1 : bytes.Count);
                yield return Error(index++, $"the line is longer than the limit of {Size(maxEntryBytes)} per entry (data.max_entry_bytes); the entry is skipped", lineNo);
            }
            else if (end < 0 && bytes.Count == 0) yield break;
            else
            {
                int len = end >= 0 ? end : bytes.Count;
                if (len > maxEntryBytes)
                {
                    bytes.Advance(end >= 0 ? len + 1 : len);
                    yield return Error(index++, $"the line is longer than the limit of {Size(maxEntryBytes)} per entry (data.max_entry_bytes); the entry is skipped", lineNo);
                }
                else
                {
                    var line = bytes.Take(len);
                    if (end >= 0) bytes.Advance(1);
                    if (!IsBlank(line)) yield return ParseLine(line, index++, lineNo, baseDir);
                }
            }
            if (end < 0 && bytes.Final && bytes.Count == 0) yield break;
        }
    }

    private static bool IsBlank(byte[] line) => line.AsSpan().IndexOfAnyExcept(" \t\r"u8) < 0;

    private static ManifestItem ParseLine(byte[] bytes, int index, long lineNo, string? baseDir) =>
        ParseEntry(bytes, index, lineNo, baseDir, "line", "invalid JSON");

    /// <summary>
    /// One entry's bytes, strictly: UTF-8 first (a JSON parser only finds bad bytes inside a string when the string
    /// is read, too late), then JSON, then the ChatML shape. Whatever is wrong is this entry's error alone.
    /// </summary>
    private static ManifestItem ParseEntry(byte[] bytes, int index, long lineNo, string? baseDir, string unit, string jsonError)
    {
        var chars = new char[bytes.Length];
        if (Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
            return Error(index, $"invalid UTF-8 at byte {read + 1} of the {unit}; the entry is skipped", lineNo);
        var text = new string(chars, 0, written);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text); }
        catch (JsonException e)
        {
            return Error(index, $"{jsonError}: {e.Message}", lineNo);
        }
        using (doc)
        {
            try
            {
                return ChatMLEntryParser.TryParse(doc.RootElement, index, baseDir, out var s, out var err)
                    ? new ManifestItem(index, s, null)
                    : new ManifestItem(index, null, err! with { Line = lineNo });
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or OverflowException)
            {
                return Error(index, $"cannot read the entry ({e.Message})", lineNo);
            }
        }
    }

    /// <summary>
    /// Walks the array element by element: each is delimited by <see cref="JsonValueScanner"/> (so a malformed one is
    /// still skipped whole), then parsed strictly on its own. A bad element is one entry's error and the next is read.
    /// </summary>
    private static IEnumerable<ManifestItem> ReadArray(Stream stream, string? baseDir, int maxEntryBytes)
    {
        var bytes = new ManifestBytes(stream);
        bytes.SkipWhitespace();
        bytes.Advance(1); // the '[' the format was sniffed from
        int index = 0;
        bool afterElement = false;
        while (true)
        {
            if (!bytes.SkipWhitespace())
            {
                yield return Error(index, "the JSON array is truncated (unexpected end of file; no closing ']')", bytes.Line);
                yield break;
            }
            byte first = bytes.Unread[0];
            if (first == ']') yield break;
            if (first == ',')
            {
                bytes.Advance(1);
                if (afterElement) { afterElement = false; continue; }
                yield return Error(index++, "invalid JSON in the array: an empty element (two commas)", bytes.Line);
                continue;
            }
            bool missingComma = afterElement;
            long lineNo = bytes.Line;
            var scanner = new JsonValueScanner();
            int length = 0;
            bool tooLong = false;
            while (true)
            {
                length += scanner.Scan(bytes.Unread[length..]);
                if (scanner.Done) break;
                if (length > maxEntryBytes) { tooLong = true; bytes.Advance(length); length = 0; }
                if (!bytes.Fill()) { scanner.EndOfStream(); break; }
            }
            if (!scanner.Done)
            {
                yield return Error(index, "the JSON array is truncated (unexpected end of file inside this entry)", lineNo);
                yield break;
            }
            if (tooLong || length > maxEntryBytes)
            {
                bytes.Advance(length);
                yield return Error(index++, $"the element is longer than the limit of {Size(maxEntryBytes)} per entry (data.max_entry_bytes); the entry is skipped", lineNo);
            }
            else if (missingComma)
            {
                bytes.Advance(length);
                yield return Error(index++, "invalid JSON in the array: ',' missing before this element; the entry is skipped", lineNo);
            }
            else yield return ParseElement(bytes.Take(length), index++, lineNo, baseDir);
            afterElement = true;
        }
    }

    private static ManifestItem ParseElement(byte[] element, int index, long lineNo, string? baseDir) =>
        ParseEntry(element, index, lineNo, baseDir, "element", "invalid JSON in the array");

    private static string Size(int bytes) =>
        bytes % (1 << 20) == 0 ? $"{bytes >> 20} MiB" : bytes % (1 << 10) == 0 ? $"{bytes >> 10} KiB" : $"{bytes} bytes";

    private static ManifestItem Error(int index, string message, long? line = null) => new(index, null, new ManifestError(index, "", message, line));

    /// <summary>Replays the bytes consumed while sniffing the format, then the rest of the stream.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : Stream
    {
        private int _pos;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_pos < prefix.Length)
            {
                int n = Math.Min(count, prefix.Length - _pos);
                Array.Copy(prefix, _pos, buffer, offset, n);
                _pos += n;
                return n;
            }
            return inner.Read(buffer, offset, count);
        }
    }
}
