using System.Text;

namespace HiggsCluster.Training.Text;

/// <summary>
/// Byte-level rank BPE as HF tokenizers' BPE model runs it: a pre-token is mapped to the byte-level alphabet, looked
/// up whole first when <c>ignore_merges</c> is set, else split into single characters and merged pair by pair,
/// always the lowest-ranked adjacent pair, leftmost on ties.
/// </summary>
public sealed class BpeModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<long, (int Rank, int Id)> _merges;
    private readonly int[] _byteIds = new int[256];

    /// <param name="merges">In rank order: the ids of the pair and of the token it merges into.</param>
    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(int A, int B, int Merged)> merges, bool ignoreMerges)
    {
        _vocab = vocab;
        IgnoreMerges = ignoreMerges;
        int max = vocab.Count == 0 ? -1 : vocab.Values.Max();
        _idToToken = new string[max + 1];
        foreach (var (tok, id) in vocab) _idToToken[id] = tok;
        for (int b = 0; b < 256; b++)
        {
            var s = ByteLevelAlphabet.ToChar((byte)b).ToString();
            _byteIds[b] = vocab.TryGetValue(s, out var id) ? id : -1;
        }
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b, merged) = merges[rank];
            _merges.TryAdd(Key(a, b), (rank, merged)); // a repeated pair keeps its best rank
        }
    }

    public bool IgnoreMerges { get; }
    public int VocabSize => _vocab.Count;
    public int MergeCount => _merges.Count;

    public bool TryGetId(string byteLevelToken, out int id) => _vocab.TryGetValue(byteLevelToken, out id);

    public string? TokenOf(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>Appends the ids of one pre-token given as UTF-8 bytes.</summary>
    public void EncodePiece(ReadOnlySpan<byte> utf8, List<int> output)
    {
        if (utf8.Length == 0) return;
        if (IgnoreMerges || utf8.Length == 1)
        {
            if (_vocab.TryGetValue(ByteLevelAlphabet.Encode(utf8), out var whole)) { output.Add(whole); return; }
        }
        int n = utf8.Length;
        var ids = new int[n];
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteIds[utf8[i]];
            if (ids[i] < 0) throw new InvalidDataException($"byte 0x{utf8[i]:X2} has no token in the BPE vocabulary");
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        // min-heap of candidate merges ordered by (rank, left position), so ties go to the leftmost pair;
        // entries made stale by an earlier merge are recognised by their ids and skipped
        var heap = new PriorityQueue<(int Left, int RightId, int LeftId), (int Rank, int Pos)>();
        void Push(int left)
        {
            int right = next[left];
            if (right < 0) return;
            if (_merges.TryGetValue(Key(ids[left], ids[right]), out var m))
                heap.Enqueue((left, ids[right], ids[left]), (m.Rank, left));
        }
        for (int i = 0; i + 1 < n; i++) Push(i);
        var alive = new bool[n];
        Array.Fill(alive, true);
        while (heap.TryDequeue(out var cand, out _))
        {
            int left = cand.Left;
            if (!alive[left] || ids[left] != cand.LeftId) continue;
            int right = next[left];
            if (right < 0 || ids[right] != cand.RightId) continue;
            var m = _merges[Key(ids[left], ids[right])];
            ids[left] = m.Id;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            if (prev[left] >= 0) Push(prev[left]);
            Push(left);
        }
        for (int i = 0; i >= 0; i = next[i]) output.Add(ids[i]);
    }

    /// <summary>The bytes of a base-vocabulary token; false for unknown ids.</summary>
    public bool TryAppendBytes(int id, List<byte> into)
    {
        var tok = TokenOf(id);
        return tok != null && ByteLevelAlphabet.TryDecode(tok, into);
    }

    internal static string Utf8ToByteLevel(string text) => ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(text));
}
