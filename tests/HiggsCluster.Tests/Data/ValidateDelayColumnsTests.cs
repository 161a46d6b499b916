using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Data;

/// <summary>
/// `data validate` estimates a sample's length as training does, delay columns included (codebooks − 1 per audio):
/// an entry that fits data.max_tokens only without them used to pass validation and then be refused by the run.
/// </summary>
[Trait("Category", "Data"), Trait("Category", "Adversarial")]
public sealed class ValidateDelayColumnsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _tokenizer;
    private readonly string _manifest;

    public ValidateDelayColumnsTests()
    {
        _tokenizer = _dir.File("tokenizer.json");
        TinyTextTokenizerWriter.Write(_tokenizer, new[] { "Say hello to the quiet river." }, merges: 40);
        WavWriter.Write(_dir.File("one.wav"), SyntheticSpeech.Generate(1.0, 16000, 1), 16000, WavSampleFormat.Pcm16);
        _manifest = _dir.File("manifest.jsonl");
        File.WriteAllText(_manifest, new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Say hello to the quiet river." },
                new JsonObject { ["role"] = "assistant", ["content"] = new JsonObject { ["type"] = "audio", ["audio_url"] = "one.wav" } }),
        }.ToJsonString() + "\n");
    }

    public void Dispose() => _dir.Dispose();

    private long Length(int delayColumns) =>
        Assert.Single(DataValidator.Validate(_manifest, TextTokenizer.Load(_tokenizer), new SampleBuilderOptions { DelayColumns = delayColumns }).TokenLengths);

    [Fact]
    public void An_entry_under_max_tokens_without_delay_columns_but_over_with_them_is_reported()
    {
        long bare = Length(0);
        Assert.Equal(bare + 7, Length(7)); // one audio: the delay pattern of 8 codebooks adds 7 columns
        var options = new SampleBuilderOptions { MaxTokens = (int)bare + 3 };
        Assert.True(DataValidator.Validate(_manifest, TextTokenizer.Load(_tokenizer), options).Ok);

        var report = DataValidator.Validate(_manifest, TextTokenizer.Load(_tokenizer), options with { DelayColumns = 7 });
        var e = Assert.Single(report.Errors);
        Assert.Equal(0, e.EntryIndex);
        Assert.Contains($"at least {bare + 7} positions", e.Message);
        Assert.Contains("7 delay columns per audio", e.Message);
        Assert.Contains($"data.max_tokens ({bare + 3})", e.Message);
    }

    [Fact]
    public void The_validate_verb_counts_the_higgs_default_of_8_codebooks_and_says_so()
    {
        long bare = Length(0);
        var stdout = new StringWriter();
        int rc = CommandTable.Dispatch(new[] { "data", "validate", "--manifest", _manifest, "--tokenizer", _tokenizer, "--max-tokens", (bare + 3).ToString() }, stdout, TextWriter.Null);
        var text = stdout.ToString();
        Assert.True(rc == 1, text);
        Assert.Contains("note: length estimate counts 7 delay columns per audio (8 codebooks, from the Higgs default", text);
        Assert.Contains("entry 0", text);
        Assert.Contains("data.max_tokens", text);
        // with room for the delay columns it passes
        Assert.Equal(0, CommandTable.Dispatch(new[] { "data", "validate", "--manifest", _manifest, "--tokenizer", _tokenizer, "--max-tokens", (bare + 7).ToString() }, new StringWriter(), TextWriter.Null));
    }

    [Fact]
    public void The_codebook_count_comes_from_the_base_model_config_or_the_collator_preset()
    {
        var ws = DemoWorkspace.Create(_dir.File("ws"), entries: 2, hidden: 32, layers: 1);
        var fromBase = DelayColumns.Of(ws.BaseModel);
        int nq = HiggsCluster.Training.Model.HiggsAudioConfig.Load(Path.Combine(ws.BaseModel, "config.json")).AudioNumCodebooks;
        Assert.Equal(nq, fromBase.Codebooks);
        Assert.Equal(nq - 1, fromBase.PerAudio);
        Assert.Contains("base model's config.json", fromBase.Describe());

        Assert.Equal(0, DelayColumns.Of(ws.BaseModel, CollatorPresets.Seed).PerAudio);
        var none = DelayColumns.Of(_dir.File("no-such-model"));
        Assert.Equal((8, 7), (none.Codebooks, none.PerAudio));
        Assert.Contains("Higgs default", none.Describe());

        // the verb reads it from --base
        var stdout = new StringWriter();
        CommandTable.Dispatch(new[] { "data", "validate", "--manifest", _manifest, "--tokenizer", _tokenizer, "--base", ws.BaseModel }, stdout, TextWriter.Null);
        Assert.Contains($"note: length estimate counts {nq - 1} delay column", stdout.ToString());
        Assert.Contains($"({nq} codebooks, from the base model's config.json)", stdout.ToString());
    }
}
