using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace HiggsCluster.Training.Text;

/// <summary>
/// A Llama-3 style Hugging Face <c>tokenizer.json</c> (byte-level BPE, Llama-3 split regex, special added tokens)
/// reimplemented in managed code. <see cref="Encode"/> gives the ids of HF's
/// <c>encode(text, add_special_tokens=False)</c>: added tokens are cut out first (leftmost-longest, no stripping),
/// the rest goes through the split regex, the byte-level map and BPE.
/// </summary>
public sealed class TextTokenizer
{
    private readonly BpeModel _model;
    private readonly Dictionary<string, int> _added;
    private readonly Dictionary<int, string> _addedById;
    private readonly AddedTokenTrie _trie;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private const int CacheLimit = 200_000;
    private const int CacheablePieceLength = 256;

    private TextTokenizer(string source, BpeModel model, Dictionary<string, int> added)
    {
        Source = source;
        _model = model;
        _added = added;
        _addedById = added.ToDictionary(kv => kv.Value, kv => kv.Key);
        _trie = new AddedTokenTrie(added);
    }

    /// <summary>Where the tokenizer was loaded from, for error messages.</summary>
    public string Source { get; }

    /// <summary>Added (special) tokens by content, e.g. "&lt;|AUDIO|&gt;".</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => _added;

    public int BaseVocabSize => _model.VocabSize;

    /// <summary>The id of an added token, by name; throws when this vocabulary does not define it.</summary>
    public int SpecialId(string name) =>
        _added.TryGetValue(name, out var id) ? id
            : throw new KeyNotFoundException($"tokenizer {Source} has no added token '{name}' (is it the Higgs vocabulary? see scripts/fetch-test-assets.sh)");

    public static TextTokenizer Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        using var stream = File.OpenRead(path);
        using var doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        try
        {
            return FromJson(doc.RootElement, path);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not a usable HF tokenizer.json: {e.Message}", e);
        }
    }

    private static TextTokenizer FromJson(JsonElement root, string source)
    {
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind != JsonValueKind.Null)
            throw new NotSupportedException($"{source}: a normalizer is not supported (Llama-3 has none)");
        CheckPreTokenizer(root.GetProperty("pre_tokenizer"), source);

        var model = root.GetProperty("model");
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
        if (type != "BPE") throw new NotSupportedException($"{source}: model type '{type}' is not supported (BPE only)");
        foreach (var unsupported in new[] { "continuing_subword_prefix", "end_of_word_suffix", "dropout" })
            if (model.TryGetProperty(unsupported, out var v) && v.ValueKind != JsonValueKind.Null)
                throw new NotSupportedException($"{source}: BPE option '{unsupported}' is not supported");
        if (model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True)
            throw new NotSupportedException($"{source}: BPE byte_fallback is not supported");
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in model.GetProperty("vocab").EnumerateObject()) vocab[p.Name] = p.Value.GetInt32();
        var merges = new List<(int, int, int)>(model.GetProperty("merges").GetArrayLength());
        var lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        char[] joined = new char[64];
        foreach (var m in model.GetProperty("merges").EnumerateArray())
        {
            string left, right;
            if (m.ValueKind == JsonValueKind.String)
            {
                var s = m.GetString()!;
                int sp = s.IndexOf(' ', 1);
                if (sp < 0) throw new InvalidDataException($"{source}: merge '{s}' has no separating space");
                left = s[..sp];
                right = s[(sp + 1)..];
            }
            else
            {
                var pair = m.EnumerateArray().Select(x => x.GetString()!).ToArray();
                if (pair.Length != 2) throw new InvalidDataException($"{source}: merge #{merges.Count} is not a pair");
                (left, right) = (pair[0], pair[1]);
            }
            if (joined.Length < left.Length + right.Length) joined = new char[(left.Length + right.Length) * 2];
            left.CopyTo(joined);
            right.CopyTo(joined.AsSpan(left.Length));
            if (!lookup.TryGetValue(left, out var ia) || !lookup.TryGetValue(right, out var ib))
                throw new InvalidDataException($"{source}: merge #{merges.Count} '{left} {right}' uses a token missing from the vocabulary");
            if (!lookup.TryGetValue(joined.AsSpan(0, left.Length + right.Length), out var merged))
                throw new InvalidDataException($"{source}: merge #{merges.Count} '{left} {right}' produces a token missing from the vocabulary");
            merges.Add((ia, ib, merged));
        }

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var at))
        {
            foreach (var a in at.EnumerateArray())
            {
                var content = a.GetProperty("content").GetString()!;
                int id = a.GetProperty("id").GetInt32();
                bool Flag(string name) => a.TryGetProperty(name, out var f) && f.ValueKind == JsonValueKind.True;
                if (!Flag("special") || Flag("normalized") || Flag("lstrip") || Flag("rstrip") || Flag("single_word"))
                    throw new NotSupportedException(
                        $"{source}: added token '{content}' ({id}) is not a plain special token (special, no normalization/strip/single_word), which is all this tokenizer implements");
                if (content.Length == 0) throw new InvalidDataException($"{source}: added token {id} is empty");
                added[content] = id;
            }
        }
        return new TextTokenizer(source, new BpeModel(vocab, merges, ignoreMerges), added);
    }

    private static void CheckPreTokenizer(JsonElement pre, string source)
    {
        bool ok = false;
        if (pre.GetProperty("type").GetString() == "Sequence")
        {
            var parts = pre.GetProperty("pretokenizers").EnumerateArray().ToArray();
            ok = parts.Length == 2
                 && parts[0].GetProperty("type").GetString() == "Split"
                 && parts[0].GetProperty("pattern").TryGetProperty("Regex", out var rx) && rx.GetString() == Llama3PreTokenizer.Pattern
                 && parts[0].GetProperty("behavior").GetString() == "Isolated"
                 && !(parts[0].TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True)
                 && parts[1].GetProperty("type").GetString() == "ByteLevel"
                 && parts[1].GetProperty("add_prefix_space").ValueKind == JsonValueKind.False
                 && parts[1].GetProperty("use_regex").ValueKind == JsonValueKind.False;
        }
        if (!ok)
            throw new NotSupportedException(
                $"{source}: pre_tokenizer is not the Llama-3 one (Sequence[Split(Llama-3 regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)])");
    }

    /// <summary>HF <c>encode(text, add_special_tokens=False)</c>.</summary>
    public int[] Encode(string text)
    {
        var output = new List<int>(text.Length / 3 + 4);
        Encode(text, output);
        return output.ToArray();
    }

    public void Encode(string text, List<int> output)
    {
        var span = text.AsSpan();
        int segmentStart = 0, i = 0;
        var pieces = new List<(int Start, int Length)>();
        while (i < span.Length)
        {
            int len = _trie.LongestMatch(span, i, out int id);
            if (len == 0) { i++; continue; }
            EncodeOrdinary(text, segmentStart, i - segmentStart, pieces, output);
            output.Add(id);
            i += len;
            segmentStart = i;
        }
        EncodeOrdinary(text, segmentStart, span.Length - segmentStart, pieces, output);
    }

    private void EncodeOrdinary(string text, int start, int length, List<(int, int)> pieces, List<int> output)
    {
        if (length == 0) return;
        pieces.Clear();
        Llama3PreTokenizer.Split(text.AsSpan(start, length), pieces);
        byte[]? rented = null;
        try
        {
            foreach (var (ps, pl) in pieces)
            {
                var piece = text.AsSpan(start + ps, pl);
                if (pl <= CacheablePieceLength)
                {
                    var key = piece.ToString();
                    if (_cache.TryGetValue(key, out var cached)) { output.AddRange(cached); continue; }
                    int before = output.Count;
                    EncodePiece(piece, ref rented, output);
                    if (_cache.Count < CacheLimit) _cache.TryAdd(key, output.GetRange(before, output.Count - before).ToArray());
                }
                else EncodePiece(piece, ref rented, output);
            }
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private void EncodePiece(ReadOnlySpan<char> piece, ref byte[]? buffer, List<int> output)
    {
        int max = Encoding.UTF8.GetMaxByteCount(piece.Length);
        if (buffer == null || buffer.Length < max)
        {
            if (buffer != null) ArrayPool<byte>.Shared.Return(buffer);
            buffer = ArrayPool<byte>.Shared.Rent(max);
        }
        int n = Encoding.UTF8.GetBytes(piece, buffer);
        _model.EncodePiece(buffer.AsSpan(0, n), output);
    }

    /// <summary>The text of the ids, special tokens kept (HF <c>decode(ids, skip_special_tokens=False)</c>).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        void Flush()
        {
            if (bytes.Count == 0) return;
            sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            if (_addedById.TryGetValue(id, out var special)) { Flush(); sb.Append(special); continue; }
            if (!_model.TryAppendBytes(id, bytes))
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is not in the vocabulary of {Source}");
        }
        Flush();
        return sb.ToString();
    }

    /// <summary>Character trie over the added tokens' contents for leftmost-longest matching.</summary>
    private sealed class AddedTokenTrie
    {
        private sealed class Node
        {
            public Dictionary<char, Node>? Next;
            public int Id = -1;
        }

        private readonly Node _root = new();
        private readonly HashSet<char> _firstChars = new();

        public AddedTokenTrie(Dictionary<string, int> tokens)
        {
            foreach (var (content, id) in tokens)
            {
                var node = _root;
                foreach (var c in content)
                {
                    node.Next ??= new Dictionary<char, Node>();
                    if (!node.Next.TryGetValue(c, out var child)) node.Next[c] = child = new Node();
                    node = child;
                }
                node.Id = id;
                _firstChars.Add(content[0]);
            }
        }

        public int LongestMatch(ReadOnlySpan<char> s, int start, out int id)
        {
            id = -1;
            if (!_firstChars.Contains(s[start])) return 0;
            int best = 0;
            var node = _root;
            for (int i = start; i < s.Length; i++)
            {
                if (node.Next == null || !node.Next.TryGetValue(s[i], out var child)) break;
                node = child;
                if (node.Id >= 0) { best = i - start + 1; id = node.Id; }
            }
            return best;
        }
    }
}
