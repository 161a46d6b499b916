using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The whole system on 127.0.0.1: a coordinator node (this test process), two loader processes and two worker
/// processes train a real run (tiny random Higgs checkpoint, tiny tokenizers, synthetic speech), with a checkpoint and
/// validations, and the adapter it publishes equals bit for bit the one the single-process engine makes for the same
/// global batch (two plan ranks: the engine sums rank 0's and rank 1's gradients as the two-worker ring does).
/// </summary>
[Trait("Category", "Cluster")]
[Collection("Engine")]
public sealed class ClusterTrainingTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-cluster-run-" + Guid.NewGuid().ToString("N"));
    private readonly HiggsProcesses _nodes = new();

    private static TrainOptions Options(DemoWorkspace ws, string outputDir)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 0);
        o.Epochs = 2; o.MaxSteps = 0;
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;     // global batch 4 = 1 × 2 × 2
        o.ValSteps = 3; o.SaveSteps = 4; o.ValidationFraction = 0.2;
        o.LoraDropout = 0.1;                                       // masks are seeded per (step, rank, micro): same on both sides
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    [Fact(Timeout = 420_000)]
    public async Task Coordinator_two_loaders_and_two_workers_train_the_same_adapter_as_the_single_process_engine()
    {
        var ct = TestContext.Current.CancellationToken;
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 14, seed: 5, hidden: 32, layers: 2);

        // the reference: one process, the engine's own loop (this also fills the shared code cache)
        var refOptions = Options(ws, Path.Combine(_root, "single"));
        var reference = ClusterTestRuns.SingleProcessRun(refOptions);

        int threads = TorchSharp.torch.get_num_threads();
        int seedPort = LocalPorts.Next();
        var seeds = $"127.0.0.1:{seedPort}";
        using var host = ClusterTestRuns.CoordinatorHost(seedPort);
        await host.StartAsync(ct);
        try
        {
            foreach (var (name, role) in new[] { ("loader-1", "loader"), ("loader-2", "loader"), ("worker-1", "worker"), ("worker-2", "worker") })
                _nodes.Start(name, "node", "--role", role, "--port", LocalPorts.Next().ToString(), "--seeds", seeds, "--threads", threads.ToString());

            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var clusterOptions = Options(ws, Path.Combine(_root, "cluster"));
            var spec = RunSpecFactory.From(clusterOptions, "mp", shardCount: 4, startWorkers: 2);
            Assert.Equal(new RunAccepted("mp"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(300);
            do
            {
                await Task.Delay(500, ct);
                _nodes.AssertAlive();
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("mp"), TimeSpan.FromSeconds(10), ct);
            } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped) && DateTime.UtcNow < deadline);
            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}\n{_nodes.Tails()}");

            // the ledger: every planned sample once per epoch, steps in order, each committed once, both workers in every step
            var ledger = await coordinator.Ask<RunLedger>(new GetRunLedger("mp"), TimeSpan.FromSeconds(10), ct);
            Assert.Equal(reference.NextStep, ledger.Steps.Length);
            Assert.Equal(Enumerable.Range(0, ledger.Steps.Length).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            Assert.All(ledger.Steps, e => Assert.Equal(2, e.World));
            foreach (var epoch in ledger.Steps.Select(e => e.Epoch).Distinct())
                Assert.Equal(ledger.PlannedTrainIds.Order(), ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
            Assert.Equal(reference.ConsumedSamples.Order(), ledger.Steps.SelectMany(e => e.SampleIds).Order());

            // a checkpoint and validations happened, as configured
            var outDir = clusterOptions.OutputDir;
            Assert.NotEmpty(TrainerCheckpoint.List(Path.Combine(outDir, "checkpoints")));
            var metrics = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl"));
            Assert.Equal(ledger.Steps.Length, metrics.Count(l => l.Contains("\"type\":\"train\"")));
            Assert.True(metrics.Count(l => l.Contains("\"type\":\"val\"")) >= 2, "baseline and final validation at least");

            // the adapter: bit-identical to the single-process engine's
            var mine = SafetensorsFile.ReadAll(Path.Combine(outDir, "adapter", "adapter_model.safetensors"));
            var theirs = SafetensorsFile.ReadAll(Path.Combine(reference.AdapterDir, "adapter_model.safetensors"));
            Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
            foreach (var (name, t) in theirs)
                Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), $"{name}: max |diff| {(t - mine[name]).abs().max().item<float>()}");
            // and it trained: LoRA B starts at zero
            Assert.Contains(mine, kv => kv.Key.Contains("lora_B") && kv.Value.abs().max().item<float>() > 0);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    public void Dispose()
    {
        _nodes.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
