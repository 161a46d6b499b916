using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using System.Diagnostics;
using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Cluster;
using HiggsCluster.Training.Demo;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// The `higgs` tool as a user drives it: three `higgs node` processes on 127.0.0.1 (two coordinator-capable seeds, one
/// also a loader, and a worker), each with its command host, and `higgs &lt;host:port&gt; …` processes against them:
/// cluster show, run submit → run watch → run status Completed → the adapter is there → run plot, then cluster leave.
/// </summary>
[Trait("Category", "Cli")]
[Collection("Engine")]
public sealed class CliEndToEndTests : IDisposable
{
    private const string Token = "e2e-token-0123456789abcdef";
    private readonly TempDir _dir = new();
    private readonly HiggsProcesses _procs;
    private static readonly string[] Nodes = { "a", "b", "c" };

    public CliEndToEndTests()
    {
        _procs = new HiggsProcesses { WorkingDirectory = _dir.Path };
        _procs.Environment["HIGGS_CMD_TOKEN"] = Token;
    }

    private void StartNode(string name, params string[] args) => _procs.Start(name, new[] { "node" }.Concat(args).ToArray());

    private IEnumerable<string> Out(string node) => _procs.Lines(node);

    private string Tails() => _procs.Tails();

    /// <summary>One `higgs` CLI process; returns exit code, stdout, stderr and its wall time.</summary>
    private Task<(int Code, string Out, string Err, double Seconds)> Higgs(params string[] args) => _procs.Run(args);

    private async Task Until(Func<bool> ok, double seconds, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!ok())
        {
            if (sw.Elapsed.TotalSeconds > seconds) Assert.Fail($"{what} within {seconds} s:\n{Tails()}");
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }

    private int CmdPort(string node) =>
        int.Parse(Out(node).First(l => l.StartsWith("HIGGS_CMD listening=", StringComparison.Ordinal)).Split(' ')[1].Split(':')[^1]);

    [Fact(Timeout = 400_000)]
    public async Task Submit_watch_status_plot_and_leave_through_the_cli_against_a_three_process_cluster()
    {
        var ws = DemoWorkspace.Create(_dir.File("ws"), entries: 10, seed: 11, hidden: 32, layers: 2);
        var runs = Directory.CreateDirectory(_dir.File("runs")).FullName;
        var o = ws.TrainOptions(Path.Combine(runs, "e2e"), maxSteps: 4);
        o.CodeCache = Path.Combine(runs, "code-cache");
        o.ValSteps = 2; o.SaveSteps = 2; o.TensorBoard = false;
        o.Samples = 1; o.SampleMaxSeconds = 2;   // the worker that writes checkpoints speaks one validation entry
        var config = RunConfigYaml.Write(_dir.File("run.yaml"), o);

        int[] akka = { LocalPorts.Next(), LocalPorts.Next(), LocalPorts.Next() };
        var seeds = $"127.0.0.1:{akka[0]},127.0.0.1:{akka[1]}";
        string[] Common(int port) => new[] { "--port", port.ToString(), "--seeds", seeds, "--cmd-port", "0", "--data-root", ws.Root, "--output-root", runs, "--threads", "1" };
        StartNode("a", new[] { "--role", "coordinator,loader" }.Concat(Common(akka[0])).ToArray());
        StartNode("b", new[] { "--role", "coordinator" }.Concat(Common(akka[1])).ToArray());
        StartNode("c", new[] { "--role", "worker" }.Concat(Common(akka[2])).ToArray());
        await Until(() => Nodes.All(n => Out(n).Any(l => l.StartsWith("HIGGS_NODE ") && l.Contains(" up=3 "))) || Nodes.Any(n => _procs.Get(n).HasExited), 60, "the cluster did not form");
        _procs.AssertAlive();
        var a = $"127.0.0.1:{CmdPort("a")}";
        var b = $"127.0.0.1:{CmdPort("b")}";

        // cluster show lists every member with its roles
        var show = await Higgs(a, "cluster", "show", "--json");
        Assert.True(show.Code == 0, show.Err);
        var members = JsonNode.Parse(show.Out)!["members"]!.AsArray();
        string Roles(int port) => string.Join(",", members.Single(m => m!["address"]!.GetValue<string>().EndsWith($":{port}"))!["roles"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal(3, members.Count);
        Assert.Equal("coordinator,loader", Roles(akka[0]));
        Assert.Equal("coordinator", Roles(akka[1]));
        Assert.Equal("worker", Roles(akka[2]));
        var human = await Higgs(a, "cluster", "show");
        Assert.Contains($"akka.ssl.tcp://higgs@127.0.0.1:{akka[2]} | [worker] | up | reachable", human.Out);
        Assert.Contains("Count: 3 nodes", human.Out);

        // submit to one node, watch and ask on another: the coordinator is reached through the singleton proxy
        var submit = await Higgs(b, "run", "submit", "--config", config, "--run-id", "e2e");
        Assert.True(submit.Code == 0, submit.Err + "\n" + Tails());
        Assert.Contains("run e2e accepted", submit.Out);

        var watch = await Higgs(a, "run", "watch", "e2e");
        Assert.True(watch.Code == 0, $"watch exit {watch.Code}: {watch.Err}\n{watch.Out}\n{Tails()}");
        var lastLine = watch.Out.Trim().Split('\n')[^1];
        Assert.Contains("e2e Completed epoch", lastLine);
        Assert.Contains("step 4/4", lastLine);
        Assert.Matches(@"codebooks( \d+\.\d{4}){8}", lastLine);

        var status = await Higgs(b, "run", "status", "e2e", "--json");
        Assert.True(status.Code == 0, status.Err);
        var st = JsonNode.Parse(status.Out)!;
        Assert.Equal("Completed", st["phase"]!.GetValue<string>());
        Assert.Equal(4, st["step"]!.GetValue<long>());
        Assert.Equal(8, st["codebook_losses"]!.AsArray().Count);
        Assert.True(File.Exists(Path.Combine(o.OutputDir, "adapter", "adapter_model.safetensors")), "no adapter in " + o.OutputDir);
        Assert.True(File.Exists(Path.Combine(o.OutputDir, "adapter", "adapter_config.json")));

        var plotDir = _dir.File("plots-here");
        var plot = await Higgs(a, "run", "plot", "e2e", "--out", plotDir);
        Assert.True(plot.Code == 0, plot.Err);
        foreach (var png in new[] { "loss.png", "codebooks.png", "validation.png" })
        {
            Assert.True(File.Exists(Path.Combine(o.OutputDir, "plots", png)), png + " not written on the node");
            var copy = await File.ReadAllBytesAsync(Path.Combine(plotDir, png), TestContext.Current.CancellationToken);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, copy[..4]);
        }
        // the samples of the last validation, listed on the node and copied here
        var samplesDir = _dir.File("samples-here");
        var samples = await Higgs(a, "run", "samples", "e2e", "--out", samplesDir);
        Assert.True(samples.Code == 0, samples.Err + "\n" + Tails());
        var lastStep = Directory.GetDirectories(Path.Combine(o.OutputDir, "samples"), "step-*").Order(StringComparer.Ordinal).Last();
        Assert.Equal("step-0000004", Path.GetFileName(lastStep));
        foreach (var f in Directory.GetFiles(lastStep))
            Assert.Equal(await File.ReadAllBytesAsync(f, TestContext.Current.CancellationToken),
                await File.ReadAllBytesAsync(Path.Combine(samplesDir, "step-0000004", Path.GetFileName(f)), TestContext.Current.CancellationToken));
        Assert.Contains(Directory.GetFiles(Path.Combine(samplesDir, "step-0000004")), f => f.EndsWith(".wav", StringComparison.Ordinal));
        Assert.Contains(Directory.GetFiles(Path.Combine(samplesDir, "step-0000004")), f => f.EndsWith(".png", StringComparison.Ordinal));
        var none = await Higgs(a, "run", "samples", "e2e", "--step", "3");
        Assert.Equal(5, none.Code);

        var logs = await Higgs(a, "run", "logs", "e2e", "--json");
        Assert.Equal(4, logs.Out.Split('\n').Count(l => l.Contains("\"type\":\"train\"")));

        // the worker leaves gracefully when asked through another node: its process ends with 0, the others see 2 members
        var leave = await Higgs(a, "cluster", "leave", $"akka.ssl.tcp://higgs@127.0.0.1:{akka[2]}");
        Assert.True(leave.Code == 0, leave.Err);
        var worker = _procs.Get("c");
        await Until(() => worker.HasExited, 30, "the worker did not exit after cluster leave");
        Assert.Equal(0, worker.ExitCode);
        await Until(() => Out("a").Any(l => l.StartsWith("HIGGS_NODE ") && l.Contains(" up=2 ")), 20, "node a never saw the worker go");
        // removal follows the leave once every member has seen it exit
        JsonArray after = new();
        var sw = Stopwatch.StartNew();
        do
        {
            var show2 = await Higgs(a, "cluster", "show", "--json");
            Assert.True(show2.Code == 0, show2.Err);
            after = JsonNode.Parse(show2.Out)!["members"]!.AsArray();
        } while (after.Any(m => m!["address"]!.GetValue<string>().EndsWith($":{akka[2]}")) && sw.Elapsed.TotalSeconds < 20);
        Assert.DoesNotContain(after, m => m!["address"]!.GetValue<string>().EndsWith($":{akka[2]}"));
        Assert.Equal(2, after.Count(m => m!["status"]!.GetValue<string>() == "up"));
    }

    public void Dispose()
    {
        _procs.Dispose();
        _dir.Dispose();
    }
}
