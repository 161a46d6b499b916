using System.Text.Json;
using HiggsCluster.Tests.Text;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Goldens;
using Xunit;

namespace HiggsCluster.Tests.Data;

[Trait("Category", "Data")]
public sealed class ChatMLPreparerTests
{
    private static PreparedSample Prepare(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return ChatMLPreparer.Prepare(ChatMLEntryParser.ParseOrThrow(doc.RootElement), TestTokenizer.Get(), recordTokenizerCalls: true);
    }

    private const int AudioOut = 128016, Audio = 128015, Eot = 128009, Eom = 128008, Ignore = -100;

    [Fact]
    public void Labels_only_assistant_turns_from_start_index()
    {
        var p = Prepare("""
            {"messages":[
              {"role":"user","content":"Say hi."},
              {"role":"assistant","content":{"type":"audio","audio_url":"ref.wav"}},
              {"role":"user","content":[{"type":"audio","audio_url":"in.wav"},"Again."]},
              {"role":"assistant","content":["Hi",{"type":"audio","audio_url":"out.wav"}]}
            ],"start_index":3,"misc":{"speaker":7}}
            """);
        Assert.Equal(p.InputTokens.Length, p.LabelTokens.Length);
        Assert.Equal(p.TokenizerCalls!.SelectMany(c => c.Ids), p.InputTokens);
        Assert.Equal(new[] { "ref.wav", "in.wav", "out.wav" }, p.AudioContents.Select(a => a.AudioUrl));
        Assert.Equal(new[] { AudioOut, Audio, AudioOut }, p.AudioPlacements.Select(a => p.InputTokens[a.Position]));
        Assert.Equal(new[] { Ignore, Ignore, AudioOut }, p.AudioPlacements.Select(a => a.Label));
        Assert.Equal(new[] { "out.wav" }, p.AudioLabelContents.Select(a => a.AudioUrl));
        Assert.Equal(7, p.Speaker!.GetValue<int>());
        Assert.Equal("7", p.SpeakerText);

        // the last turn (header excluded) is labelled with itself, everything before it is -100
        int lastHeaderEnd = p.TokenizerCalls!.Take(p.TokenizerCalls!.Count - 3).Sum(c => c.Ids.Length);
        Assert.All(p.LabelTokens[..lastHeaderEnd], l => Assert.Equal(Ignore, l));
        Assert.Equal(p.InputTokens[lastHeaderEnd..], p.LabelTokens[lastHeaderEnd..]);
        Assert.Equal(Eot, p.InputTokens[^1]);
    }

    [Fact]
    public void Consecutive_assistant_messages_end_with_eom_and_recipients_are_always_labelled()
    {
        var p = Prepare("""
            {"messages":[
              {"role":"user","content":"Q"},
              {"role":"assistant","content":"A1","recipient":"tool"},
              {"role":"assistant","content":"A2"}
            ],"start_index":5,"speaker":"s"}
            """);
        var texts = p.TokenizerCalls!.Select(c => c.Text).ToList();
        Assert.Equal(new[]
        {
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n", "Q", "<|eot_id|>",
            "<|start_header_id|>assistant<|end_header_id|>\n\n", "tool<|recipient|>", "A1", "<|eom_id|>",
            "<|start_header_id|>assistant<|end_header_id|>\n\n", "A2", "<|eot_id|>",
        }, texts);
        int recStart = p.TokenizerCalls!.Take(4).Sum(c => c.Ids.Length);
        var recIds = p.TokenizerCalls![4].Ids;
        Assert.Equal(recIds, p.LabelTokens[recStart..(recStart + recIds.Length)]);
        Assert.Equal(recIds.Length, p.LabelTokens.Count(l => l != Ignore)); // nothing else is trained (start_index past the end)
        Assert.Contains(Eom, p.InputTokens);
        Assert.Equal("s", p.SpeakerText);
    }

    [Fact]
    public void Pieces_are_tokenized_separately()
    {
        var split = Prepare("""{"messages":[{"role":"assistant","content":["Hel","lo world"]}]}""");
        var whole = Prepare("""{"messages":[{"role":"assistant","content":"Hello world"}]}""");
        Assert.Contains(9906, whole.InputTokens);
        Assert.DoesNotContain(9906, split.InputTokens);
        Assert.Equal(split.TokenizerCalls![1].Ids.Concat(split.TokenizerCalls![2].Ids), split.InputTokens[5..^1]);
    }

    [Fact]
    public void Empty_messages_give_empty_lists_and_keep_the_speaker()
    {
        var p = Prepare("""{"messages":[],"speaker":""}""");
        Assert.Empty(p.InputTokens);
        Assert.Empty(p.AudioContents);
        Assert.Equal("", p.SpeakerText);
    }

    [Fact]
    public void Golden_area_without_tokenizer_says_how_to_get_it()
    {
        var area = GoldenAreas.All(new GoldenEnvironment(null))["prepare"];
        var run = GoldenHarness.Enumerate(new[] { HiggsCluster.Training.RepoPaths.DefaultGoldens }, "prepare").First();
        var ex = Assert.Throws<InvalidOperationException>(() => area.Compute(run));
        Assert.Contains("scripts/fetch-test-assets.sh", ex.Message);
    }

    [Fact]
    public void Json_values_compare_numbers_by_value_and_report_the_path()
    {
        var a = System.Text.Json.Nodes.JsonNode.Parse("""{"x":[1,{"y":"a"}],"z":3}""");
        Assert.Null(JsonValues.FirstDifference(a, System.Text.Json.Nodes.JsonNode.Parse("""{"z":3.0,"x":[1.0,{"y":"a"}]}"""), "v"));
        Assert.Equal("v.x[1].y: \"a\" != expected \"b\"",
            JsonValues.FirstDifference(a, System.Text.Json.Nodes.JsonNode.Parse("""{"x":[1,{"y":"b"}],"z":3}"""), "v"));
        Assert.NotNull(JsonValues.FirstDifference(a, System.Text.Json.Nodes.JsonNode.Parse("""{"x":[1,{"y":"a"}],"z":null}"""), "v"));
        Assert.NotNull(JsonValues.FirstDifference(a, System.Text.Json.Nodes.JsonNode.Parse("""{"x":[1,{"y":"a"}]}"""), "v"));
    }
}
