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

        // what the weights said at each validation: 24 kHz mono WAVs with spectrograms, in TensorBoard and the report
        var steps = Directory.GetDirectories(Path.Combine(run, "samples"), "step-*");
        Assert.NotEmpty(steps);
        var wavs = steps.SelectMany(d => Directory.GetFiles(d, "*.wav")).ToList();
        Assert.NotEmpty(wavs);
        foreach (var wav in wavs)
        {
            Assert.True(File.Exists(Path.ChangeExtension(wav, ".png")), $"no spectrogram beside {wav}");
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(Path.ChangeExtension(wav, ".png"))[..4]);
            using var f = File.OpenRead(wav);
            var info = Training.Audio.WavReader.ReadInfo(f, wav);
            Assert.Equal((24000, 1), (info.SampleRate, info.Channels));
            Assert.True(FfprobeSays(wav) is not { } probe || (probe.Contains("sample_rate=24000") && probe.Contains("channels=1")), FfprobeSays(wav));
        }
        var report = File.ReadAllText(Path.Combine(run, "report.md"));
        Assert.Contains("## Samples", report);
        Assert.Contains(Path.GetFileName(wavs[0]), report);
        var events = Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*").Select(File.ReadAllBytes).ToList();
        Assert.Contains(events, e => System.Text.Encoding.ASCII.GetString(e).Contains("samples/entry-"));
        Assert.Contains("demo: audio samples", stdout.ToString());
    }

    /// <summary>ffprobe's view of a WAV's stream (null where ffprobe is not installed).</summary>
    private static string? FfprobeSays(string wav)
    {
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("ffprobe", $"-v error -show_entries stream=sample_rate,channels -of default=noprint_wrappers=1 \"{wav}\"")
                { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = System.Diagnostics.Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? text : "ffprobe failed: " + p.StandardError.ReadToEnd();
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
