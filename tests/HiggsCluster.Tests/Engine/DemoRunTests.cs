using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Engine;

[Collection("Engine"), Trait("Category", "Engine")]
public sealed class DemoRunTests
{
    [Fact]
    public void Demo_leaves_adapter_metrics_plots_and_report()
    {
        using var tmp = new TempDir();
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int rc = CommandTable.Dispatch(new[] { "demo", "--out", tmp.Path, "--entries", "5", "--steps", "6", "--progress", "off" }, stdout, stderr);
        Assert.True(rc == 0, stdout + "\n" + stderr);
        var run = Path.Combine(tmp.Path, "run");
        Assert.True(File.Exists(Path.Combine(run, "adapter", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "adapter", "adapter_config.json")));
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var train = lines.Where(l => l["type"]!.GetValue<string>() == "train").ToList();
        Assert.Equal(6, train.Count);
        foreach (var key in new[] { "step", "loss", "text_loss", "audio_loss", "lr", "grad_norm", "tokens", "tokens_per_s" })
            Assert.True(train[0].ContainsKey(key), key);
        Assert.Contains(lines, l => l["type"]!.GetValue<string>() == "val");
        foreach (var png in new[] { "loss.png", "codebooks.png", "validation.png" })
        {
            var b = File.ReadAllBytes(Path.Combine(run, "plots", png));
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, b[..4]);
        }
        Assert.Contains("# Training run report", File.ReadAllText(Path.Combine(run, "report.md")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*"));
        Assert.Contains("adapter:", stdout.ToString());
    }
}
