using System.Text.Json.Nodes;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Goldens;
using Xunit;

namespace HiggsCluster.Tests.Goldens;

/// <summary>A golden run that records an upstream error passes only on the port's refusal for that reason, never on any exception.</summary>
[Trait("Category", "Golden")]
public sealed class ExpectedRefusalTests
{
    private sealed class Throwing(Exception e) : IGoldenArea
    {
        public string Name => "area";
        public GoldenOutputs Compute(GoldenRun run) => throw e;
    }

    private static GoldenResult Check(string expectError, Exception thrown)
    {
        var run = new GoldenRun("root", "area", "root/area/case", new JsonObject(),
            new JsonObject { ["name"] = "r", ["expect_error"] = JsonNode.Parse(expectError) });
        return GoldenHarness.Check(run, new Dictionary<string, IGoldenArea> { ["area"] = new Throwing(thrown) });
    }

    private const string ExtraKey = """{"type": "Rejected", "message": "Failed to convert to ChatMLSample: can not match \"name\" to any data class field"}""";
    private const string RecipientOnUser = """{"type": "TypeError", "message": "Object of type ChatMLSample is not JSON serializable", "upstream": "prepare_chatml_sample catches the exception, prints 'Error in prepare_chatml_sample: Recipient is only available for assistant role.', then raises TypeError"}""";
    private const string LongAudioIn = """{"type": "IndexError", "message": "index 1 is out of bounds for dimension 0 with size 1", "raised_at": "get_audio_codes (line 52 of upstream file dataset/chatml_dataset.py)"}""";

    [Fact]
    public void The_refusal_of_the_offending_field_passes()
    {
        Assert.Equal(GoldenStatus.Pass, Check(ExtraKey, new ChatMLFormatException(new ManifestError(0, "messages[0].name", "unknown key in a message"))).Status);
        Assert.Equal(GoldenStatus.Pass, Check(RecipientOnUser, new ChatMLFormatException(new ManifestError(0, "messages[0].recipient", "a recipient is only allowed on assistant messages"))).Status);
        Assert.Equal(GoldenStatus.Pass, Check(LongAudioIn, new UpstreamIndexException(1, 1, "sample 0: audio_ids_start", "get_audio_codes")).Status);
    }

    [Fact]
    public void An_environment_problem_or_another_reason_fails()
    {
        var env = Check(ExtraKey, new InvalidOperationException("area 'prepare' needs the Llama-3/Higgs vocabulary"));
        Assert.Equal(GoldenStatus.Fail, env.Status);
        Assert.Contains("InvalidOperationException", env.Detail);
        Assert.Equal(GoldenStatus.Fail, Check(ExtraKey, new ChatMLFormatException(new ManifestError(0, "messages[0].role", "missing"))).Status);
        Assert.Equal(GoldenStatus.Fail, Check(RecipientOnUser, new ChatMLFormatException(new ManifestError(0, "messages[0].content", "missing"))).Status);
        Assert.Equal(GoldenStatus.Fail, Check(LongAudioIn, new UpstreamIndexException(3, 2, "sample 0: audio_ids_start", "get_audio_codes")).Status);
        Assert.Equal(GoldenStatus.Fail, Check("""{"type": "KeyError", "message": "x"}""", new KeyNotFoundException("x")).Status);
    }
}
