using System.Text;
using System.Text.Json;

namespace HiggsCluster.Training.Data;

/// <summary>
/// Reads a ChatML manifest entry by entry, never holding more than one entry in memory:
/// a JSON array file (first non-blank byte '[') is walked with <see cref="Utf8JsonReader"/> over a growing buffer;
/// anything else is JSON Lines (one entry per non-blank line).
/// Each entry yields a parsed sample or a <see cref="ManifestError"/>; a bad entry never stops the read, except
/// malformed JSON inside an array, after which the rest of the array cannot be delimited (one error, then the end).
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

    public static IEnumerable<ManifestItem> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"manifest not found: {path}", path);
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return ReadIterator(path, baseDir);
    }

    private static IEnumerable<ManifestItem> ReadIterator(string path, string baseDir)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkSize, FileOptions.SequentialScan);
        foreach (var item in Read(stream, baseDir)) yield return item;
    }

    /// <summary>Reads a manifest from a stream; <paramref name="baseDir"/> resolves relative audio urls (null: unresolved).</summary>
    public static IEnumerable<ManifestItem> Read(Stream stream, string? baseDir)
    {
        var first = PeekFirstByte(stream, out var prefix);
        var source = new PrefixedStream(prefix, stream);
        return first == (byte)'[' ? ReadArray(source, baseDir) : ReadLines(source, baseDir);
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

    private static IEnumerable<ManifestItem> ReadLines(Stream stream, string? baseDir)
    {
        using var reader = new StreamReader(stream, new UTF8Encoding(false, true), detectEncodingFromByteOrderMarks: true, ChunkSize);
        int index = 0;
        long lineNo = 0;
        while (true)
        {
            string? line;
            string? decodeError = null;
            try { line = reader.ReadLine(); }
            catch (DecoderFallbackException e) { line = null; decodeError = e.Message; }
            if (decodeError != null)
            {
                yield return new ManifestItem(index, null, new ManifestError(index, "", $"invalid UTF-8 ({decodeError}); the rest of the file is skipped", lineNo + 1));
                yield break;
            }
            if (line == null) yield break;
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            yield return ParseLine(line, index, lineNo, baseDir);
            index++;
        }
    }

    private static ManifestItem ParseLine(string line, int index, long lineNo, string? baseDir)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line); }
        catch (JsonException e)
        {
            return new ManifestItem(index, null, new ManifestError(index, "", $"invalid JSON: {e.Message}", lineNo));
        }
        using (doc)
        {
            return ChatMLEntryParser.TryParse(doc.RootElement, index, baseDir, out var s, out var err)
                ? new ManifestItem(index, s, null)
                : new ManifestItem(index, null, err! with { Line = lineNo });
        }
    }

    private static IEnumerable<ManifestItem> ReadArray(Stream stream, string? baseDir)
    {
        var buffer = new byte[ChunkSize];
        int start = 0, length = 0; // unread bytes are buffer[start..length]
        bool final = false, needMore = true, inArray = false;
        var state = new JsonReaderState();
        int index = 0;

        while (true)
        {
            if (needMore)
            {
                if (final)
                {
                    yield return Fatal(index, "the JSON array is truncated (unexpected end of file)");
                    yield break;
                }
                if (start > 0)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, length - start);
                    length -= start;
                    start = 0;
                }
                if (length == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2); // an entry larger than the buffer
                int n = stream.Read(buffer, length, buffer.Length - length);
                if (n == 0) final = true; else length += n;
            }
            var step = Step(buffer.AsSpan(start, length - start), final, ref state, ref inArray, index, baseDir, out int consumed);
            start += consumed;
            needMore = step.NeedMore;
            if (step.Item != null)
            {
                yield return step.Item;
                index++;
            }
            if (step.Done) yield break;
        }
    }

    private readonly record struct StepResult(ManifestItem? Item, bool NeedMore, bool Done);

    /// <summary>Reads at most one array element from the buffer; ref-struct readers cannot live across yields, hence this split.</summary>
    private static StepResult Step(ReadOnlySpan<byte> data, bool final, ref JsonReaderState state, ref bool inArray,
        int index, string? baseDir, out int consumed)
    {
        consumed = 0;
        var reader = new Utf8JsonReader(data, final, state);
        try
        {
            if (!inArray)
            {
                if (!reader.Read()) return new StepResult(null, true, false);
                if (reader.TokenType != JsonTokenType.StartArray)
                    return new StepResult(Fatal(index, "the manifest is not a JSON array"), false, true);
                inArray = true;
                consumed = (int)reader.BytesConsumed;
                state = reader.CurrentState;
                return new StepResult(null, false, false);
            }
            if (!reader.Read()) return new StepResult(null, true, false);
            if (reader.TokenType == JsonTokenType.EndArray)
            {
                consumed = (int)reader.BytesConsumed;
                state = reader.CurrentState;
                return new StepResult(null, false, true);
            }
            var start = reader;
            if (!reader.TrySkip())
            {
                // the element is not complete in the buffer: state and position stay before it, retried with more bytes
                return new StepResult(null, true, false);
            }
            ManifestItem item;
            using (var doc = JsonDocument.ParseValue(ref start))
            {
                item = ChatMLEntryParser.TryParse(doc.RootElement, index, baseDir, out var s, out var err)
                    ? new ManifestItem(index, s, null)
                    : new ManifestItem(index, null, err);
            }
            consumed = (int)reader.BytesConsumed;
            state = reader.CurrentState;
            return new StepResult(item, false, false);
        }
        catch (JsonException e)
        {
            return new StepResult(Fatal(index, $"invalid JSON in the array ({e.Message}); the rest of the file is skipped"), false, true);
        }
    }

    private static ManifestItem Fatal(int index, string message) => new(index, null, new ManifestError(index, "", message));

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
