using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Text;

[Trait("Category", "Tokenizer")]
public sealed class TextTokenizerTests
{
    // reference ids: ../shared/reference/audio-spec.md §3.1 (three independent engines agree on them)
    public static TheoryData<string, int[]> ReferenceRows() => new()
    {
        { "Hello world", new[] { 9906, 1917 } },
        { "مرحبا بالعالم، كيف حالك اليوم؟", new[] { 101244, 30925, 103645, 100700, 24102, 101952, 69885, 114804, 102656, 32173, 110497, 101735 } },
        { "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n", new[] { 128000, 128006, 882, 128007, 271 } },
        { "<|start_header_id|>assistant<|end_header_id|>\n\n", new[] { 128006, 78191, 128007, 271 } },
        { "<|audio_bos|><|AUDIO|><|audio_eos|>", new[] { 128011, 128015, 128012 } },
        { "<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|><|eot_id|>", new[] { 128013, 128016, 128012, 128009 } },
        { "Hello<|eot_id|>world <|eot_id|> <|eot_id", new[] { 9906, 128009, 14957, 220, 128009, 83739, 68, 354, 851 } },
        { " việc", new[] { 100769 } },
        {
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nGenerate audio following instruction.\n\n<|scene_desc_start|>\nAudio is recorded from a quiet room.\n<|scene_desc_end|><|eot_id|>",
            new[] { 128000, 128006, 9125, 128007, 271, 32215, 7855, 2768, 7754, 382, 128018, 198, 15097, 374, 12715, 505, 264, 11594, 3130, 627, 128019, 128009 }
        },
    };

    [Theory]
    [MemberData(nameof(ReferenceRows))]
    public void Encodes_reference_rows(string text, int[] expected)
    {
        Assert.Equal(expected, TestTokenizer.Get().Encode(text));
    }

    [Theory]
    [MemberData(nameof(ReferenceRows))]
    public void Decode_inverts_encode(string text, int[] ids)
    {
        Assert.Equal(text, TestTokenizer.Get().Decode(ids));
    }

    [Fact]
    public void Special_ids_are_read_from_the_file_by_name()
    {
        var tok = TestTokenizer.Get();
        var s = HiggsSpecialTokens.From(tok);
        Assert.Equal(128000, s.BeginOfText);
        Assert.Equal(128008, s.EomId);
        Assert.Equal(128009, s.EotId);
        Assert.Equal(128011, s.AudioBos);
        Assert.Equal(128015, s.Audio);
        Assert.Equal(128016, s.AudioOut);
        Assert.Equal(128017, s.Recipient);
        Assert.Equal(128022, tok.SpecialId("<SE>"));
        Assert.Throws<KeyNotFoundException>(() => tok.SpecialId("<|no_such_token|>"));
    }

    [Fact]
    public void Whole_vocabulary_pieces_bypass_merges()
    {
        // ' việc' is one vocabulary entry; plain merging would give 3355, 26298, 66
        var tok = TestTokenizer.Get();
        Assert.Single(tok.Encode(" việc"));
        Assert.NotEqual(new[] { 3355, 26298, 66 }, tok.Encode(" việc"));
    }

    [Fact]
    public void Astral_plane_letters_and_digits_group_like_bmp_ones()
    {
        var tok = TestTokenizer.Get();
        // math-bold letters form one \p{L}+ pre-token with the leading space; U+1D7D1.. digits group by three
        Assert.Equal(new[] { " 𝐀𝐁𝐂", "𝟑𝟒𝟓", "𝟔" }, Llama3PreTokenizer.Split(" 𝐀𝐁𝐂𝟑𝟒𝟓𝟔"));
        Assert.Equal(new[] { "𠀀𠀁", " 𠀂" }, Llama3PreTokenizer.Split("𠀀𠀁 𠀂"));
        Assert.Equal("𠀀𠀁 𠀂", tok.Decode(tok.Encode("𠀀𠀁 𠀂")));
    }

    [Fact]
    public void Split_follows_the_regex_alternatives()
    {
        Assert.Equal(new[] { "I", "'M", " fine", "'ll", " go" }, Llama3PreTokenizer.Split("I'M fine'll go"));
        Assert.Equal(new[] { "a", "123", "456" }, Llama3PreTokenizer.Split("a123456"));
        Assert.Equal(new[] { "x", "  ", " y" }, Llama3PreTokenizer.Split("x   y"));
        Assert.Equal(new[] { "x", " \n\n", "y" }, Llama3PreTokenizer.Split("x \n\ny"));
        Assert.Equal(new[] { "x", " \r\n", "  " }, Llama3PreTokenizer.Split("x \r\n  "));
        Assert.Equal(new[] { "a", " ...\n", "b" }, Llama3PreTokenizer.Split("a ...\nb"));
        Assert.Equal(new[] { "\u00A0word" }, Llama3PreTokenizer.Split("\u00A0word"));
    }

    [Fact]
    public void Emoji_sequences_round_trip()
    {
        var tok = TestTokenizer.Get();
        const string text = "family 👨‍👩‍👧‍👦, thumbs 👍🏽 and flag 🇯🇵!";
        var ids = tok.Encode(text);
        Assert.True(ids.Length > 10);
        Assert.Equal(text, tok.Decode(ids));
    }
}
