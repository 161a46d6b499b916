using HiggsCluster.Tests.Harness;
using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Cluster;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Fault;

/// <summary>
/// A crash during a checkpoint write (issue 7, must-show e), on 127.0.0.1 with real processes: the worker writing the
/// checkpoint of step 6 is killed by its <c>--fault kill:worker@step=6,point=checkpoint-write</c> schedule after the
/// files are written and before they are published. The folder left behind is kept as it was at the kill: its newest
/// complete checkpoint is an earlier one (the half-published one is ignored), and a run resumed from it ends with the
/// adapter of the uninterrupted single-process run, bit for bit. Meanwhile the cluster itself goes on: the surviving
/// worker writes the checkpoint again and completes the run alone.
/// </summary>
[Trait("Category", "Fault")]
[Collection("Engine")]
public sealed class CheckpointWriteKillTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-ckpt-kill-" + Guid.NewGuid().ToString("N"));
    private readonly HiggsProcesses _nodes = new();
    private const int KillAt = 6;

    private static TrainOptions Options(DemoWorkspace ws, string outputDir)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 0);
        o.Epochs = 3; o.MaxSteps = 0;
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;     // global batch 4 = 1 × 2 × 2
        o.ValSteps = 4; o.SaveSteps = 3; o.KeepLast = 10; o.ValidationFraction = 0.2;
        o.LoraDropout = 0.1;
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    private static Dictionary<string, TorchSharp.torch.Tensor> Adapter(string dir) =>
        SafetensorsFile.ReadAll(Path.Combine(dir, "adapter_model.safetensors"));

    private static void AssertLedger(RunLedger ledger, long steps)
    {
        Assert.Equal(Enumerable.Range(0, (int)steps).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep)); // each step once
        foreach (var epoch in ledger.Steps.Select(e => e.Epoch).Distinct())
            Assert.Equal(ledger.PlannedTrainIds.Order(), ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
    }

    [Fact(Timeout = 480_000)]
    public async Task A_worker_killed_while_publishing_a_checkpoint_leaves_the_previous_one_valid_and_a_resume_from_it_completes()
    {
        var ct = TestContext.Current.CancellationToken;
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 14, seed: 5, hidden: 32, layers: 2);
        var reference = ClusterTestRuns.SingleProcessRun(Options(ws, Path.Combine(_root, "single")));
        Assert.True(reference.NextStep > KillAt, $"the run has only {reference.NextStep} steps");

        int threads = TorchSharp.torch.get_num_threads();
        int seedPort = LocalPorts.Next();
        var seeds = $"127.0.0.1:{seedPort}";
        var node = new NodeOptions { Port = seedPort, Seeds = new[] { seeds }, Roles = new[] { "coordinator" }, RemoteTls = TestClusterCerts.Remote }.Validate();
        var clusterOut = Path.Combine(_root, "cluster");
        var crashCopy = Path.Combine(_root, "as-killed");
        RunLedger ledger;
        using (var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b.AddHiggsNode(node))).Build())
        {
            await host.StartAsync(ct);
            try
            {
                // the coordinator's lead worker (checkpoints, validation) is the first by address: give it the fault
                var ports = new[] { LocalPorts.Next(), LocalPorts.Next() }
                    .OrderBy(p => $"akka.ssl.tcp://{node.SystemName}@127.0.0.1:{p}/", StringComparer.Ordinal).ToArray();
                _nodes.Start("loader", "node", "--role", "loader", "--port", LocalPorts.Next().ToString(), "--seeds", seeds, "--threads", threads.ToString());
                var lead = _nodes.Start("worker-lead", "node", "--role", "worker", "--port", ports[0].ToString(), "--seeds", seeds,
                    "--threads", threads.ToString(), "--fault", $"kill:worker@step={KillAt},point=checkpoint-write");
                _nodes.Start("worker-2", "node", "--role", "worker", "--port", ports[1].ToString(), "--seeds", seeds, "--threads", threads.ToString());

                var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
                var spec = RunSpecFactory.From(Options(ws, clusterOut), "ck", shardCount: 4, startWorkers: 2);
                Assert.Equal(new RunAccepted("ck"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

                // the kill: copy the run folder as the crash left it, before the survivor writes the checkpoint again
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(240);
                while (!lead.HasExited)
                {
                    Assert.True(DateTime.UtcNow < deadline, $"the fault did not fire\n{_nodes.Tails()}");
                    await Task.Delay(20, ct);
                }
                var killed = Stopwatch.StartNew();
                CopyDir(clusterOut, crashCopy);
                Assert.Contains(_nodes.Lines("worker-lead"), l => l.Contains("fires now"));

                RunStatus st;
                do
                {
                    await Task.Delay(300, ct);
                    st = await coordinator.Ask<RunStatus>(new GetRunStatus("ck"), TimeSpan.FromSeconds(10), ct);
                    Assert.True(DateTime.UtcNow < deadline + TimeSpan.FromSeconds(120), $"run still {st.Phase} at {st.CommittedSteps}: {st.Detail}\n{_nodes.Tails()}");
                } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped));
                output.WriteLine($"the surviving worker completed the run {killed.Elapsed.TotalSeconds:F1} s after the kill");
                Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}\n{_nodes.Tails()}");
                ledger = await coordinator.Ask<RunLedger>(new GetRunLedger("ck"), TimeSpan.FromSeconds(10), ct);
            }
            finally
            {
                await host.StopAsync(CancellationToken.None);
                _nodes.Dispose();
            }
        }

        // the cluster's own run: every step once, every sample once per epoch; the steps after the kill ran on one worker
        AssertLedger(ledger, reference.NextStep);
        Assert.All(ledger.Steps.Where(e => e.GlobalStep < KillAt), e => Assert.Equal(2, e.World));
        Assert.All(ledger.Steps.Where(e => e.GlobalStep >= KillAt), e => Assert.Equal(1, e.World));
        Assert.Equal(reference.ConsumedSamples, ledger.Steps.SelectMany(e => e.SampleIds));
        // one worker sums both plan ranks' micro-batches itself: the same gradients added in another order (fp32)
        var survivors = Adapter(Path.Combine(clusterOut, "adapter"));
        foreach (var (name, t) in Adapter(reference.AdapterDir))
            Assert.True((t - survivors[name]).abs().max().item<float>() <= 1e-5f, $"{name}: max |diff| {(t - survivors[name]).abs().max().item<float>()}");

        // the folder as the kill left it: step 6's files were written but never published; the newest complete
        // checkpoint is an earlier one (the periodic one of step 3, or the best-so-far one kept at a validation since)
        var ckRoot = Path.Combine(crashCopy, "checkpoints");
        var complete = TrainerCheckpoint.List(ckRoot).Select(c => c.Step).ToList();
        Assert.Contains(3L, complete);
        Assert.All(complete, step => Assert.True(step < KillAt, $"checkpoint of step {step} published"));
        long previous = complete[^1];
        var unpublished = Assert.Single(Directory.GetDirectories(ckRoot, ".tmp-*"));
        Assert.Contains(TrainerCheckpoint.NameFor(KillAt), Path.GetFileName(unpublished));
        Assert.True(File.Exists(Path.Combine(unpublished, TrainerCheckpoint.StateFile)), "the kill came after the files were written");
        var latest = TrainerCheckpoint.Resolve(ckRoot, "latest");
        Assert.EndsWith(TrainerCheckpoint.NameFor(previous), latest);
        var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(latest, TrainerCheckpoint.StateFile)))!;
        Assert.Equal(previous, state.NextStep);
        Assert.Equal(reference.ConsumedSamples.Take(state.ConsumedSamples.Count), state.ConsumedSamples);
        output.WriteLine($"complete checkpoints as killed: {string.Join(", ", complete)}; resuming from step {previous}");

        // resume from it (the in-process cluster, two workers): the uninterrupted run's adapter, bit for bit
        var resumed = InProcessCluster.Train(Options(ws, crashCopy), workers: 2, new LineProgress(TextWriter.Null, 1000), resume: "latest",
            timeout: TimeSpan.FromMinutes(4));
        Assert.Equal(reference.NextStep, resumed.NextStep);
        Assert.Equal(reference.NextStep - previous, resumed.StepsRun);
        Assert.Equal(reference.ConsumedSamples, resumed.ConsumedSamples); // the ledger: the steps before the checkpoint from the plan, the rest trained, each once
        var theirs = Adapter(reference.AdapterDir);
        var mine = Adapter(resumed.AdapterDir);
        Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
        foreach (var (name, t) in theirs)
            Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), $"{name}: max |diff| {(t - mine[name]).abs().max().item<float>()}");
        Assert.Empty(Directory.GetDirectories(ckRoot, ".tmp-*")); // the stale half-write was cleaned up by the next save
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, d)));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(f, Path.Combine(to, Path.GetRelativePath(from, f)));
    }

    public void Dispose()
    {
        _nodes.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
