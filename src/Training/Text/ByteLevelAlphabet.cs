namespace HiggsCluster.Training.Text;

/// <summary>
/// The GPT-2 byte-level alphabet used by HF's ByteLevel pre-tokenizer/decoder: every byte gets a printable
/// character, so BPE vocabularies can be stored as strings.
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var taken = new bool[256];
        // printable Latin-1 ranges keep their own code point; the rest are moved to 256 + k in byte order
        foreach (var (lo, hi) in new[] { (0x21, 0x7E), (0xA1, 0xAC), (0xAE, 0xFF) })
            for (int b = lo; b <= hi; b++) { map[b] = (char)b; taken[b] = true; }
        int next = 256;
        for (int b = 0; b < 256; b++)
            if (!taken[b]) map[b] = (char)next++;
        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var d = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++) d[ByteToChar[b]] = (byte)b;
        return d;
    }

    public static char ToChar(byte b) => ByteToChar[b];

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++) dst[i] = ByteToChar[src[i]];
        });
    }

    /// <summary>Appends the bytes a byte-level token string stands for; false when it holds a foreign character.</summary>
    public static bool TryDecode(string token, List<byte> into)
    {
        foreach (var c in token)
        {
            if (!CharToByte.TryGetValue(c, out var b)) return false;
            into.Add(b);
        }
        return true;
    }
}
