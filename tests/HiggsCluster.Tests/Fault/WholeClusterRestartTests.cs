using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.DataLoaderNode.Building;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.Engine;
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
/// The whole cluster lost mid-run (the real engine, tiny model): a new cluster on the coordinator's SQLite journal finds
/// that none of the workers holding the committed state came back, rolls the run back to its last checkpoint, the new
/// workers load it from disk, and the run completes with the adapter of the uninterrupted single-process run, every
/// planned sample once per epoch, and each step once in the metrics log.
/// </summary>
[Trait("Category", "Fault")]
[Collection("Engine")]
public sealed class WholeClusterRestartTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-whole-" + Guid.NewGuid().ToString("N"));

    private static TrainOptions Options(DemoWorkspace ws, string outputDir)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 0);
        o.Epochs = 6; o.MaxSteps = 0;
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;
        o.ValSteps = 3; o.SaveSteps = 4; o.ValidationFraction = 0.2;
        o.LoraDropout = 0.1;
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    private static IHost Cluster(int port, CoordinatorJournal journal, SampleBatchBuilder builder) =>
        new HostBuilder().ConfigureServices(s => s.AddAkka("higgs", (b, _) =>
        {
            var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles, Journal = journal, ResumeWait = TimeSpan.FromSeconds(3) }.Validate();
            b.AddHiggsNode(node).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.WarningLevel).AddDataLoader(builder);
            for (int i = 0; i < 2; i++) b.AddGpuWorker<CoordinatorKey>(new EngineStepRunner(), new GpuWorkerOptions { Name = $"gpu-worker-{i}" });
        })).Build();

    [Fact(Timeout = 480_000)]
    public async Task A_run_whose_whole_cluster_was_lost_rolls_back_to_its_last_checkpoint_and_ends_bit_identical()
    {
        var ct = TestContext.Current.CancellationToken;
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 14, seed: 5, hidden: 32, layers: 2);
        var reference = ClusterTestRuns.SingleProcessRun(Options(ws, Path.Combine(_root, "single")));
        var o = Options(ws, Path.Combine(_root, "cluster"));
        var spec = RunSpecFactory.From(o, "whole", shardCount: 4, startWorkers: 2);
        var journal = CoordinatorJournal.SqliteFile(Path.Combine(_root, "journal.db"));

        async Task<RunStatus> Status(IActorRef c) => await c.Ask<RunStatus>(new GetRunStatus("whole"), TimeSpan.FromSeconds(10), ct);
        long seen, lastGeneration;
        using (var builder = new SampleBatchBuilder())
        using (var first = Cluster(LocalPorts.Next(), journal, builder))
        {
            await first.StartAsync(ct);
            var c1 = await first.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            Assert.Equal(new RunAccepted("whole"), await c1.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));
            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
            do { await Task.Delay(100, ct); st = await Status(c1); }
            while (st.CommittedSteps < 6 && st.Phase is not (RunPhase.Completed or RunPhase.Failed) && DateTime.UtcNow < deadline);
            Assert.True(st.CommittedSteps >= 6 && st.Phase is RunPhase.Training or RunPhase.Validating or RunPhase.Checkpointing, $"{st.Phase} at step {st.CommittedSteps}: {st.Detail}");
            // the workers go first (a graceful shutdown would let them train on), then the rest of the cluster
            var system = first.Services.GetRequiredService<ActorSystem>();
            for (int i = 0; i < 2; i++) system.ActorSelection($"/user/gpu-worker-{i}").Tell(PoisonPill.Instance);
            await Task.Delay(1000, ct);
            var before = await c1.Ask<RunLedger>(new GetRunLedger("whole"), TimeSpan.FromSeconds(10), ct);
            seen = before.Steps.Length;
            lastGeneration = before.Steps.Max(e => e.Generation);
            await first.StopAsync(ct);
        }
        Assert.True(seen < reference.NextStep, "the run finished before the cluster was lost");

        using (var builder = new SampleBatchBuilder())
        using (var second = Cluster(LocalPorts.Next(), journal, builder))
        {
            await second.StartAsync(ct);
            var c2 = await second.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(240);
            do { await Task.Delay(200, ct); st = await Status(c2); }
            while (st.Phase is not (RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped) && DateTime.UtcNow < deadline);
            Assert.True(st.Phase == RunPhase.Completed, $"{st.Phase} at step {st.CommittedSteps}: {st.Detail}");

            var ledger = await c2.Ask<RunLedger>(new GetRunLedger("whole"), TimeSpan.FromSeconds(10), ct);
            Assert.Equal(Enumerable.Range(0, (int)reference.NextStep).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            foreach (var epoch in ledger.Steps.Select(e => e.Epoch).Distinct())
                Assert.Equal(ledger.PlannedTrainIds.Order(), ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
            Assert.Equal(reference.ConsumedSamples.Order(), ledger.Steps.SelectMany(e => e.SampleIds).Order());
            // the new cluster trained from the last checkpoint the first one wrote: the steps after it were undone
            long firstNew = ledger.Steps.First(e => e.Generation > lastGeneration).GlobalStep;
            TestContext.Current.TestOutputHelper?.WriteLine($"{seen} steps committed when the cluster was lost; the new cluster trained from step {firstNew}");
            Assert.True(firstNew % o.SaveSteps == 0 && firstNew <= seen && firstNew > 0, $"the new cluster trained from step {firstNew} ({seen} were committed)");
        }

        var mine = SafetensorsFile.ReadAll(Path.Combine(o.OutputDir, "adapter", "adapter_model.safetensors"));
        var theirs = SafetensorsFile.ReadAll(Path.Combine(reference.AdapterDir, "adapter_model.safetensors"));
        Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
        foreach (var (name, t) in theirs)
            Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), $"{name}: max |diff| {(t - mine[name]).abs().max().item<float>()}");
        // the roll-back cut the metrics log back to the checkpoint: each step logged once, in order
        var trainSteps = File.ReadLines(Path.Combine(o.OutputDir, "metrics.jsonl")).Where(l => l.Contains("\"type\":\"train\"", StringComparison.Ordinal))
            .Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["step"]!.GetValue<long>()).ToList();
        Assert.Equal(Enumerable.Range(0, (int)reference.NextStep).Select(i => (long)i), trainSteps);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
