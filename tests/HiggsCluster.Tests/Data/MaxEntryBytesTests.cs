using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Data;

/// <summary>The manifest entry cap is the config key data.max_entry_bytes: validated, named in errors, honoured by readers.</summary>
[Trait("Category", "Data"), Trait("Category", "Adversarial")]
public sealed class MaxEntryBytesTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_key_defaults_to_32_MiB_and_bad_values_are_refused_naming_it()
    {
        Assert.Equal(32 << 20, new TrainOptions().MaxEntryBytes);
        Assert.Equal(4096, TrainConfig.Load(null, new Dictionary<string, string> { ["data.max_entry_bytes"] = "4096" }).MaxEntryBytes);
        foreach (var bad in new[] { "0", "-5", "100", "2147483647" })
        {
            var e = Assert.Throws<TrainConfigException>(() => TrainConfig.Load(null, new Dictionary<string, string> { ["data.max_entry_bytes"] = bad }));
            Assert.Equal("data.max_entry_bytes", e.Key);
            Assert.Contains(bad, e.Message);
        }
        // set in code, it is refused by Validate
        var coded = Assert.Throws<TrainConfigException>(() => new TrainOptions { Manifest = "m.jsonl", TextTokenizer = "t.json", AudioTokenizer = "a", BaseModelDir = "b", OutputDir = "o", MaxEntryBytes = 10 }.Validate(checkFiles: false));
        Assert.Equal("data.max_entry_bytes", coded.Key);
        var notANumber = Assert.Throws<TrainConfigException>(() => TrainConfig.Load(null, new Dictionary<string, string> { ["data.max_entry_bytes"] = "lots" }));
        Assert.Equal("data.max_entry_bytes", notANumber.Key);
    }

    [Fact]
    public void Validate_with_a_config_skips_an_entry_over_the_configured_cap_and_keeps_the_others()
    {
        var tokenizer = _dir.File("tokenizer.json");
        TinyTextTokenizerWriter.Write(tokenizer, new[] { "Hello there." }, merges: 20);
        string Entry(string text) => new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = text },
                new JsonObject { ["role"] = "assistant", ["content"] = "Hello there." }),
        }.ToJsonString();
        var manifest = _dir.File("m.jsonl");
        File.WriteAllLines(manifest, new[] { Entry("Hello there."), Entry(new string('x', 3000)), Entry("Hello there.") });
        var yaml = _dir.File("c.yaml");
        File.WriteAllText(yaml, $"data:\n  manifest: m.jsonl\n  text_tokenizer: tokenizer.json\n  max_entry_bytes: 2048\n");

        var stdout = new StringWriter();
        int rc = CommandTable.Dispatch(new[] { "data", "validate", "--config", yaml }, stdout, TextWriter.Null);
        var text = stdout.ToString();
        Assert.True(rc == 1, text);
        Assert.Contains("entry 1", text);
        Assert.Contains("longer than the limit of 2 KiB per entry (data.max_entry_bytes)", text);
        Assert.Contains("entries: 3 (2 valid, 1 with errors)", text);

        // the default cap lets it through
        File.WriteAllText(yaml, "data:\n  manifest: m.jsonl\n  text_tokenizer: tokenizer.json\n");
        Assert.Equal(0, CommandTable.Dispatch(new[] { "data", "validate", "--config", yaml }, new StringWriter(), TextWriter.Null));
    }
}
