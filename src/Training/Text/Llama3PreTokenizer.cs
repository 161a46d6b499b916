using System.Buffers;
using System.Globalization;
using System.Text;

namespace HiggsCluster.Training.Text;

/// <summary>
/// The Llama-3 split regex
/// <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>
/// evaluated over Unicode code points, as Oniguruma does inside HF tokenizers. .NET Regex works on UTF-16 units and
/// so never sees astral-plane letters or digits as \p{L}/\p{N}; this hand-written matcher does.
/// \s is Oniguruma's Unicode set: U+0009..U+000D, U+0085 and the Zs/Zl/Zp categories.
/// </summary>
public static class Llama3PreTokenizer
{
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private enum Kind : byte { Other, Letter, Number, Space, NewLine }

    private static readonly Kind[] AsciiKinds = BuildAscii();

    private static Kind[] BuildAscii()
    {
        var k = new Kind[128];
        for (int c = 0; c < 128; c++) k[c] = Classify(new Rune(c));
        return k;
    }

    private static Kind Classify(Rune r)
    {
        int v = r.Value;
        if (v == '\r' || v == '\n') return Kind.NewLine;
        if (v is >= 0x09 and <= 0x0D || v == 0x85) return Kind.Space;
        switch (Rune.GetUnicodeCategory(r))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Kind.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Kind.Number;
            case UnicodeCategory.SpaceSeparator:
            case UnicodeCategory.LineSeparator:
            case UnicodeCategory.ParagraphSeparator:
                return Kind.Space;
            default:
                return Kind.Other;
        }
    }

    /// <summary>Kind and UTF-16 length of the code point at <paramref name="i"/> (a lone surrogate counts as one unit of Other).</summary>
    private static Kind At(ReadOnlySpan<char> s, int i, out int len)
    {
        char c = s[i];
        if (c < 128) { len = 1; return AsciiKinds[c]; }
        if (Rune.DecodeFromUtf16(s[i..], out var r, out len) != OperationStatus.Done) { len = 1; return Kind.Other; }
        return Classify(r);
    }

    private static bool IsSpace(Kind k) => k is Kind.Space or Kind.NewLine;

    /// <summary>Appends (start, length) of every pre-token of <paramref name="s"/>, in order.</summary>
    public static void Split(ReadOnlySpan<char> s, List<(int Start, int Length)> pieces)
    {
        int p = 0;
        while (p < s.Length)
        {
            int end = MatchAt(s, p);
            pieces.Add((p, end - p));
            p = end;
        }
    }

    public static List<string> Split(string s)
    {
        var pieces = new List<(int, int)>();
        Split(s.AsSpan(), pieces);
        return pieces.Select(x => s.Substring(x.Item1, x.Item2)).ToList();
    }

    private static int MatchAt(ReadOnlySpan<char> s, int p)
    {
        int n = s.Length;
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (s[p] == '\'' && p + 1 < n)
        {
            char a = s[p + 1];
            if (FoldsTo(a, 's') || FoldsTo(a, 't') || FoldsTo(a, 'm') || FoldsTo(a, 'd')) return p + 2;
            if (p + 2 < n)
            {
                char b = s[p + 2];
                if ((FoldsTo(a, 'r') && FoldsTo(b, 'e')) || (FoldsTo(a, 'v') && FoldsTo(b, 'e')) || (FoldsTo(a, 'l') && FoldsTo(b, 'l')))
                    return p + 3;
            }
        }

        var k0 = At(s, p, out int l0);

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (k0 == Kind.Letter) return ConsumeWhile(s, p + l0, Kind.Letter);
        if (k0 is Kind.Other or Kind.Space && p + l0 < n && At(s, p + l0, out _) == Kind.Letter)
            return ConsumeWhile(s, p + l0, Kind.Letter);

        // \p{N}{1,3}
        if (k0 == Kind.Number)
        {
            int q = p + l0;
            for (int count = 1; count < 3 && q < n; count++)
            {
                if (At(s, q, out int l) != Kind.Number) break;
                q += l;
            }
            return q;
        }

        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        {
            int q = s[p] == ' ' ? p + 1 : p;
            int start = q;
            while (q < n)
            {
                var k = At(s, q, out int l);
                if (k != Kind.Other) break;
                q += l;
            }
            if (q > start)
            {
                while (q < n && (s[q] == '\r' || s[q] == '\n')) q++;
                return q;
            }
        }

        // here the code point at p is whitespace: the three whitespace alternatives
        int runEnd = p, lastNewLine = -1, lastLen = 0;
        while (runEnd < n)
        {
            var k = At(s, runEnd, out int l);
            if (!IsSpace(k)) break;
            if (k == Kind.NewLine) lastNewLine = runEnd;
            lastLen = l;
            runEnd += l;
        }
        if (runEnd == p) return p + l0; // unreachable: every code point matches one of the alternatives above
        // \s*[\r\n]+
        if (lastNewLine >= 0) return lastNewLine + 1;
        // \s+(?!\S)
        if (runEnd == n) return runEnd;
        if (runEnd - lastLen > p) return runEnd - lastLen;
        // \s+
        return runEnd;
    }

    private static int ConsumeWhile(ReadOnlySpan<char> s, int q, Kind kind)
    {
        while (q < s.Length)
        {
            if (At(s, q, out int l) != kind) break;
            q += l;
        }
        return q;
    }

    /// <summary>Case-insensitive match of one ASCII letter under Unicode simple case folding (U+017F folds to 's', U+212A to 'k').</summary>
    private static bool FoldsTo(char c, char lower)
    {
        if (c == lower || c == lower - 32) return true;
        return (lower == 's' && c == '\u017F') || (lower == 'k' && c == '\u212A');
    }
}
