using HiggsCluster.Tests.Harness;
using System.Diagnostics;
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
/// Coordinator loss (issue 7, must-show d): three coordinator-capable node processes share one SQLite journal; the
/// node hosting the coordinator singleton (the oldest) is killed with SIGKILL mid-run. The singleton moves, the new
/// coordinator replays the journal, the workers (which kept their state) re-register and the run completes with the
/// adapter bit-identical to the single-process engine's, every planned sample once per epoch, no step twice.
/// Processes: coordinator (killed), coordinator, coordinator+loader, worker, worker; this test process is a
/// role-less member that reaches the run through the singleton proxy.
/// </summary>
[Trait("Category", "Fault")]
[Collection("Engine")]
public sealed class CoordinatorFailoverTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-failover-" + Guid.NewGuid().ToString("N"));
    private readonly HiggsProcesses _nodes = new();
    private static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(2);

    private static TrainOptions Options(DemoWorkspace ws, string outputDir)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 0);
        o.Epochs = 3; o.MaxSteps = 0;
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;     // global batch 4 = 1 × 2 × 2
        o.ValSteps = 4; o.SaveSteps = 3; o.ValidationFraction = 0.2;
        o.LoraDropout = 0.1;
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    [Fact(Timeout = 480_000)]
    public async Task Killing_the_coordinator_node_mid_run_fails_over_and_the_run_completes_with_the_same_adapter()
    {
        var ct = TestContext.Current.CancellationToken;
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 14, seed: 5, hidden: 32, layers: 2);
        var refOptions = Options(ws, Path.Combine(_root, "single"));
        var reference = ClusterTestRuns.SingleProcessRun(refOptions);

        int threads = TorchSharp.torch.get_num_threads();
        int portA = LocalPorts.Next(), portB = LocalPorts.Next();
        var seeds = $"127.0.0.1:{portA},127.0.0.1:{portB}";
        var journal = $"sqlite:{Path.Combine(_root, "cluster-journal.db")}";
        var stable = StableAfter.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Process Node(string name, string roles, int port) => _nodes.Start(name, "node", "--role", roles, "--port", port.ToString(),
            "--seeds", seeds, "--threads", threads.ToString(), "--stable-after", stable, "--journal", journal);

        // the first node up is the oldest coordinator node: it hosts the singleton
        var first = Node("coord-1", "coordinator", portA);
        await Until(() => _nodes.Lines("coord-1").Any(l => l.StartsWith("HIGGS_NODE ", StringComparison.Ordinal) && l.Contains(" up=1 ")),
            TimeSpan.FromSeconds(60), "the first coordinator node up", ct);
        Node("coord-2", "coordinator", portB);
        Node("coord-3", "coordinator,loader", LocalPorts.Next());
        Node("worker-1", "worker", LocalPorts.Next());
        Node("worker-2", "worker", LocalPorts.Next());

        var client = new NodeOptions { Port = LocalPorts.Next(), Seeds = new[] { $"127.0.0.1:{portA}", $"127.0.0.1:{portB}" }, StableAfter = StableAfter, RemoteTls = TestClusterCerts.Remote };
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(client.SystemName, (b, _) => b.AddHiggsNode(client))).Build();
        await host.StartAsync(ct);
        try
        {
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var clusterOptions = Options(ws, Path.Combine(_root, "cluster"));
            var spec = RunSpecFactory.From(clusterOptions, "fo", shardCount: 4, startWorkers: 2);
            Assert.Equal(new RunAccepted("fo"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(60), ct));

            async Task<RunStatus?> Status()
            {
                try { return await coordinator.Ask<RunStatus>(new GetRunStatus("fo"), TimeSpan.FromSeconds(3), ct); }
                catch (AskTimeoutException) { return null; } // no coordinator during the fail-over
            }

            RunStatus? st = null;
            await Until(async () => (st = await Status()) is { CommittedSteps: >= 2 } || st?.Phase is RunPhase.Failed or RunPhase.Completed,
                TimeSpan.FromSeconds(240), "two steps committed", ct);
            Assert.True(st!.Phase is not (RunPhase.Failed or RunPhase.Completed), $"run ended as {st.Phase} before the kill: {st.Detail}");
            long before = st.CommittedSteps;
            Assert.True(before < st.TotalSteps, "the run finished before the kill");

            var killed = Stopwatch.StartNew();
            first.Kill(); // SIGKILL: no leave, no hand-over
            output.WriteLine($"killed the singleton's node at step {before} of {st.TotalSteps}");

            TimeSpan? back = null, resumed = null;
            long recoveredAt = -1;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(300);
            while (true)
            {
                Assert.True(DateTime.UtcNow < deadline, $"run did not complete after the fail-over: {st?.Phase} at {st?.CommittedSteps} ({st?.Detail})\n{_nodes.Tails(25)}");
                var now = await Status();
                if (now is null) { await Task.Delay(200, ct); continue; }
                st = now;
                if (back is null) { back = killed.Elapsed; recoveredAt = st.CommittedSteps; }
                if (resumed is null && st.CommittedSteps > recoveredAt) resumed = killed.Elapsed;
                if (st.Phase is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped) break;
                await Task.Delay(200, ct);
            }
            output.WriteLine($"coordinator answering again {back!.Value.TotalSeconds:F1} s after the kill (at step {recoveredAt}); " +
                $"first new step committed {resumed?.TotalSeconds:F1} s after the kill");
            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}\n{_nodes.Tails(25)}");
            Assert.NotNull(resumed);
            Assert.True(recoveredAt >= before, $"the new coordinator lost committed steps: {recoveredAt} < {before}");
            Assert.True(new[] { "coord-2", "coord-3" }.Any(n => _nodes.Lines(n).Any(l => l.Contains("coordinator recovered run fo"))),
                "no surviving coordinator node recovered the run from the journal:\n" + _nodes.Tails(25));

            // the ledger: every step once and in order, every planned sample once per epoch, both workers in every step
            var ledger = await coordinator.Ask<RunLedger>(new GetRunLedger("fo"), TimeSpan.FromSeconds(10), ct);
            Assert.Equal(reference.NextStep, ledger.Steps.Length);
            Assert.Equal(Enumerable.Range(0, ledger.Steps.Length).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            Assert.All(ledger.Steps, e => Assert.Equal(2, e.World));
            foreach (var epoch in ledger.Steps.Select(e => e.Epoch).Distinct())
                Assert.Equal(ledger.PlannedTrainIds.Order(), ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
            Assert.Equal(reference.ConsumedSamples.Order(), ledger.Steps.SelectMany(e => e.SampleIds).Order());
            Assert.Contains(ledger.Steps, e => e.GlobalStep >= before && e.Generation > ledger.Steps[0].Generation);

            // the lead worker logged each step once: no step was applied twice
            var metrics = File.ReadAllLines(Path.Combine(clusterOptions.OutputDir, "metrics.jsonl"));
            Assert.Equal(ledger.Steps.Length, metrics.Count(l => l.Contains("\"type\":\"train\"")));

            // the adapter: bit-identical to the single-process engine's
            var mine = SafetensorsFile.ReadAll(Path.Combine(clusterOptions.OutputDir, "adapter", "adapter_model.safetensors"));
            var theirs = SafetensorsFile.ReadAll(Path.Combine(reference.AdapterDir, "adapter_model.safetensors"));
            Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
            foreach (var (name, t) in theirs)
                Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), $"{name}: max |diff| {(t - mine[name]).abs().max().item<float>()}");
            Assert.Contains(mine, kv => kv.Key.Contains("lora_B") && kv.Value.abs().max().item<float>() > 0);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private async Task Until(Func<bool> done, TimeSpan limit, string what, CancellationToken ct) =>
        await Until(() => Task.FromResult(done()), limit, what, ct);

    private async Task Until(Func<Task<bool>> done, TimeSpan limit, string what, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (!await done())
        {
            _nodes.AssertAlive();
            Assert.True(sw.Elapsed < limit, $"{what}: not within {limit.TotalSeconds} s\n{_nodes.Tails(25)}");
            await Task.Delay(200, ct);
        }
    }

    public void Dispose()
    {
        _nodes.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
