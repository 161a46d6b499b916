using System.Text.Json;
using HiggsCluster.Training.Data;
using Xunit;

namespace HiggsCluster.Tests.Data;

/// <summary>The strict conversion rules of upstream (dacite strict=True, check_types=True), see goldens README "prepare".</summary>
[Trait("Category", "Data")]
public sealed class ChatMLEntryParserTests
{
    private static (ChatMLSample? Sample, ManifestError? Error) Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        ChatMLEntryParser.TryParse(doc.RootElement, 3, null, out var s, out var e);
        return (s, e);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Hi.","name":"u1"}]}""", "messages[0].name")]
    [InlineData("""{"messages":[{"role":"user","content":null}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":7,"content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user","content":"x","recipient":"bot"}]}""", "messages[0].recipient")]
    [InlineData("""{"messages":[{"role":"user","content":{"type":"audio","audio_url":"a.wav","sample_rate":24000}}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":{"type":"audio"}}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":{"type":"audio","text":"t"}}]}""", "messages[0].content.audio_url")]
    [InlineData("""{"messages":[{"role":"user","content":{"type":"text","audio_url":"a.wav"}}]}""", "messages[0].content.type")]
    [InlineData("""{"messages":[{"role":"user","content":{"audio_url":"a.wav","offset":"1"}}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":{"audio_url":"a.wav","row_id":1.5}}]}""", "messages[0].content")]
    [InlineData("""{"messages":[],"speaker":12}""", "speaker")]
    [InlineData("""{"messages":[],"start_index":1.0}""", "start_index")]
    [InlineData("""{"messages":[],"start_index":"1"}""", "start_index")]
    [InlineData("""{"messages":[],"misc":"x"}""", "misc")]
    [InlineData("""{"messages":{}}""", "messages")]
    [InlineData("""{"messages":["hi"]}""", "messages[0]")]
    public void Refuses_what_upstream_refuses(string json, string field)
    {
        var (sample, error) = Parse(json);
        Assert.Null(sample);
        Assert.Equal(3, error!.Index);
        Assert.Equal(field, error.Field);
    }

    [Fact]
    public void Accepts_every_content_form_and_drops_unknown_top_level_keys()
    {
        var (s, e) = Parse("""
            {"id": 5, "lang": "en", "messages": [
              {"role": "system", "content": "plain"},
              {"role": "user", "content": {"type": "text", "text": "one"}},
              {"role": "user", "content": ["a", {"text": "b"}, {"type": "audio", "audio_url": "r.wav", "raw_audio": null, "offset": 2, "duration": null, "row_id": 9}]},
              {"role": "assistant", "content": [], "recipient": ""},
              {"role": "assistant", "content": "", "recipient": "tool"}
            ], "start_index": 4, "misc": {"speaker": 4021}, "speaker": null}
            """);
        Assert.Null(e);
        Assert.Equal(5, s!.Messages.Count);
        Assert.Equal(new TextContent("plain"), s.Messages[0].Content.Single());
        Assert.Equal(new TextContent("one"), s.Messages[1].Content.Single());
        Assert.Equal(new TextContent("b"), s.Messages[2].Content[1]);
        var audio = Assert.IsType<AudioContent>(s.Messages[2].Content[2]);
        Assert.Equal(2.0, audio.Offset);
        Assert.Equal(9L, audio.RowId);
        Assert.Null(audio.ResolvedPath);
        Assert.Empty(s.Messages[3].Content);
        Assert.Equal("tool", s.Messages[4].Recipient);
        Assert.Equal(4L, s.StartIndex);
        Assert.Null(s.Speaker);
        Assert.Equal(4021, s.Misc!["speaker"]!.GetValue<int>());
        Assert.Equal(new[] { "id", "lang" }, s.Extra!.Select(kv => kv.Key));
    }

    [Fact]
    public void Raw_audio_is_decoded_from_base64_with_a_clear_error()
    {
        var ok = new AudioContent("", RawAudio: Convert.ToBase64String(new byte[] { 1, 2, 3 }));
        Assert.Equal(new byte[] { 1, 2, 3 }, ok.RawAudioBytes());
        Assert.Null(new AudioContent("a.wav").RawAudioBytes());
        var ex = Assert.Throws<FormatException>(() => new AudioContent("x.wav", RawAudio: "not base64!").RawAudioBytes());
        Assert.Contains("x.wav", ex.Message);
    }

    [Fact]
    public void Exception_form_names_the_entry_and_field()
    {
        using var doc = JsonDocument.Parse("""{"messages":[{"role":"bot","content":"x"}]}""");
        var ex = Assert.Throws<ChatMLFormatException>(() => ChatMLEntryParser.ParseOrThrow(doc.RootElement, 12));
        Assert.Contains("entry 12", ex.Message);
        Assert.Contains("messages[0].role", ex.Message);
    }
}
