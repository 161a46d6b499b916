using HiggsCluster.Tests.Harness;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Cluster;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Device;

/// <summary>
/// `higgs train --gpus` as a user runs it, on an injected device list (HIGGS_GPU_LIST) so that it runs without GPUs:
/// a worker process per device with its CUDA_VISIBLE_DEVICES, ranks in the devices' order, and the single-process
/// engine's adapter bit for bit. Bad selections end with one line and exit 2.
/// </summary>
[Trait("Category", "Device"), Trait("Category", "Process")]
[Collection("Engine")]
public sealed class GpuWorkerProcessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-gpus-" + Guid.NewGuid().ToString("N"));
    private readonly HiggsProcesses _procs = new();

    private static TrainOptions Options(DemoWorkspace ws, string outputDir)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 6);
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;
        o.ValSteps = 3; o.SaveSteps = 3; o.ValidationFraction = 0.2; o.LoraDropout = 0.1;
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    private static string[] Keys(TrainOptions o) =>
        HiggsCluster.Planning.RunOptionKeys.Resolved(RunSpecFactory.From(o, "x").Options).Select(kv => $"--{kv.Key}={kv.Value}").ToArray();

    [Fact(Timeout = 400_000)]
    public void Two_worker_processes_on_injected_devices_train_the_engine_adapter_with_ranks_in_device_order()
    {
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 10, seed: 7, hidden: 32, layers: 2);
        var reference = ClusterTestRuns.SingleProcessRun(Options(ws, Path.Combine(_root, "engine")));

        var o = Options(ws, Path.Combine(_root, "gpus"));
        var env = new Dictionary<string, string?> { ["HIGGS_GPU_LIST"] = "5,2", ["CUDA_VISIBLE_DEVICES"] = null };
        var p = _procs.Start("train", env, new[] { "train", "--gpus", "all" }.Concat(Keys(o)).ToArray());
        Assert.True(p.WaitForExit(360_000), "higgs train --gpus did not finish:\n" + _procs.Tails(40));
        p.WaitForExit();
        var lines = _procs.Lines("train").ToList();
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}:\n{string.Join("\n", lines.TakeLast(40))}");

        // one child per device, rank order = device order, each child saw only its device
        Assert.Contains(lines, l => l.Contains("worker process 0: CUDA_VISIBLE_DEVICES=5"));
        Assert.Contains(lines, l => l.Contains("worker process 1: CUDA_VISIBLE_DEVICES=2"));
        Assert.Contains(lines, l => l.Contains("rank 0: GPU 5"));
        Assert.Contains(lines, l => l.Contains("rank 1: GPU 2"));
        foreach (var gpu in new[] { "5", "2" })
        {
            var log = File.ReadAllText(Path.Combine(o.OutputDir, "logs", $"worker-gpu{gpu}.log"));
            Assert.Contains($"worker on 127.0.0.1:", log);
            Assert.Contains($"CUDA_VISIBLE_DEVICES={gpu}", log);
        }
        Assert.Contains(lines, l => l.StartsWith("dry run:", StringComparison.Ordinal));

        var mine = SafetensorsFile.ReadAll(Path.Combine(o.OutputDir, "adapter", "adapter_model.safetensors"));
        var theirs = SafetensorsFile.ReadAll(Path.Combine(reference.AdapterDir, "adapter_model.safetensors"));
        Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
        foreach (var (name, t) in theirs)
            Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), $"{name}: max |diff| {(t - mine[name]).abs().max().item<float>()}");
        Assert.Contains(mine, kv => kv.Key.Contains("lora_B") && kv.Value.abs().max().item<float>() > 0);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("0,1", "--gpus 9", "--gpus 9: 9 GPUs asked, this machine has 2 GPU(s): 0,1")]
    [InlineData(null, "--gpus all", "--gpus needs a CUDA build of higgs: run with HIGGS_TORCH_BACKEND=cuda")]
    [InlineData(null, "--model.dtype=int8", "config key 'model.dtype': 'int8' is not one of auto, bf16, fp32")]
    [InlineData(null, "--model.device=cuda", "config key 'model.device': cuda asked of a CPU build of higgs: rebuild with HIGGS_TORCH_BACKEND=cuda")]
    [InlineData(null, "--model.device=cuda:7", "cuda:7 asked of a CPU build")]
    public void Bad_device_requests_end_with_one_line_and_exit_2(string? injected, string extra, string message)
    {
        var ws = EngineWorkspaceOnce();
        var o = Options(ws, Path.Combine(_root, "bad"));
        var env = new Dictionary<string, string?> { ["HIGGS_GPU_LIST"] = injected, ["CUDA_VISIBLE_DEVICES"] = null };
        var args = new[] { "train" }.Concat(Keys(o)).Concat(extra.Split(' ')).ToArray();
        var p = _procs.Start("bad", env, args);
        Assert.True(p.WaitForExit(100_000));
        p.WaitForExit();
        var err = _procs.Lines("bad").Where(l => l.StartsWith("ERR ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, p.ExitCode);
        Assert.Single(err);
        Assert.StartsWith("ERR higgs: ", err[0]);
        Assert.Contains(message, err[0]);
        Assert.DoesNotContain(_procs.Lines("bad"), l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    private DemoWorkspace EngineWorkspaceOnce() => Engine.EngineWorkspace.Workspace;

    public void Dispose()
    {
        _procs.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
