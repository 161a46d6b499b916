using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The coordinator's SQLite journal across a whole cluster restart (in-process nodes, toy data and engine): a second
/// cluster on the same journal file recovers the run with its ledger; since none of the workers that held the committed
/// state came back, the run rolls back to its last checkpoint, the new workers load it and train the steps after it
/// again, and the result equals an uninterrupted run's; worker-group generations keep growing across coordinators.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class CoordinatorJournalTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("higgs-journal-").FullName;
    private const int Samples = 400, Steps = Samples / 4, SaveSteps = 5;

    private static IHost Node(NodeOptions o, ToyCluster.IdBatches loader, ToyCluster.ToyRunner w0, ToyCluster.ToyRunner w1) =>
        new HostBuilder().ConfigureServices(s => s.AddAkka(o.SystemName, (b, _) => b.AddHiggsNode(o)
            .AddDataLoader(loader, new DataLoaderOptions { Window = 2 })
            .AddGpuWorker<CoordinatorKey>(w0, new GpuWorkerOptions { Name = "w0" })
            .AddGpuWorker<CoordinatorKey>(w1, new GpuWorkerOptions { Name = "w1" }))).Build();

    [Fact(Timeout = 180_000)]
    public async Task A_cluster_restarted_on_the_same_journal_without_its_workers_rolls_the_run_back_to_its_last_checkpoint_and_completes_it()
    {
        var ct = TestContext.Current.CancellationToken;
        var journal = CoordinatorJournal.SqliteFile(Path.Combine(_root, "journal.db"));
        NodeOptions Options(int port, CoordinatorJournal j) => new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles, Journal = j, ResumeWait = TimeSpan.FromSeconds(3) }.Validate();
        ToyCluster.ToyRunner Worker(int millis) => new() { MicroStepMillis = millis };

        async Task<RunStatus> Until(IActorRef c, string runId, Func<RunStatus, bool> done, string what)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (true)
            {
                RunStatus? st = null;
                try { st = await c.Ask<RunStatus>(new GetRunStatus(runId), TimeSpan.FromSeconds(3), ct); }
                catch (AskTimeoutException) { }
                if (st is not null && done(st)) return st;
                Assert.False(st?.Phase is RunPhase.Failed or RunPhase.Stopped, $"run ended as {st?.Phase}: {st?.Detail}");
                Assert.True(DateTime.UtcNow < deadline, $"{what}: still {st?.Phase} at step {st?.CommittedSteps} ({st?.Detail})");
                await Task.Delay(50, ct);
            }
        }
        async Task<IActorRef> Coordinator(IHost h) { await h.StartAsync(ct); return await h.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct); }

        // the uninterrupted run, on its own cluster
        float[] reference;
        var r0 = Worker(1);
        using (var whole = Node(Options(LocalPorts.Next(), CoordinatorJournal.InMemory), new ToyCluster.IdBatches(Samples), r0, Worker(1)))
        {
            var c = await Coordinator(whole);
            var spec0 = ToyCluster.Spec("journal-whole", ranks: 2, micro: 1, accum: 2, shards: 4, startWorkers: 2, save: SaveSteps, seed: 4);
            Assert.Equal(new RunAccepted(spec0.RunId), await c.Ask<object>(new SubmitRun(spec0), TimeSpan.FromSeconds(20), ct));
            await Until(c, spec0.RunId, s => s.Phase == RunPhase.Completed, "the uninterrupted run");
            for (int i = 0; i < 100 && r0.Steps < Steps; i++) await Task.Delay(50, ct);
            reference = (float[])r0.Params.Clone();
            await whole.StopAsync(ct);
        }

        var spec = ToyCluster.Spec("journal", ranks: 2, micro: 1, accum: 2, shards: 4, startWorkers: 2, save: SaveSteps, seed: 4);
        long stoppedAt;
        using (var one = Node(Options(LocalPorts.Next(), journal), new ToyCluster.IdBatches(Samples), Worker(10), Worker(10)))
        {
            var c1 = await Coordinator(one);
            Assert.Equal(new RunAccepted("journal"), await c1.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));
            stoppedAt = (await Until(c1, "journal", s => s.CommittedSteps >= 2 * SaveSteps + 2, "first steps")).CommittedSteps;
            await one.StopAsync(ct);
        }
        Assert.True(stoppedAt < Steps, "the run finished before the restart");

        // a new cluster (new address, new workers holding only the initial state) on the same journal
        var w0 = Worker(5);
        var w1 = Worker(5);
        using var two = Node(Options(LocalPorts.Next(), journal), new ToyCluster.IdBatches(Samples), w0, w1);
        try
        {
            var c2 = await Coordinator(two);
            var end = await Until(c2, "journal", s => s.Phase == RunPhase.Completed, "completion after the restart");
            Assert.Equal(Steps, end.CommittedSteps);
            // both new workers loaded the same checkpoint, the newest the first cluster finished
            var restored = w0.Restored.Concat(w1.Restored).Distinct().ToList();
            var (path, checkpoint) = Assert.Single(restored);
            Assert.Equal($"mem://journal/step-{checkpoint}", path);
            // (the first cluster trains on while it shuts down: its last checkpoint may lie beyond the step seen at the stop)
            Assert.True(checkpoint % SaveSteps == 0 && checkpoint >= 2 * SaveSteps && checkpoint < Steps, $"rolled back to step {checkpoint} (stopped at {stoppedAt})");
            var ledger = await c2.Ask<RunLedger>(new GetRunLedger("journal"), TimeSpan.FromSeconds(5), ct);
            Assert.Equal(Enumerable.Range(0, Steps).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            Assert.Equal(Enumerable.Range(0, Samples).Select(i => (long)i), ledger.Steps.SelectMany(e => e.SampleIds).Order());
            var gens = ledger.Steps.Select(e => e.Generation).ToList();
            Assert.Equal(gens.Order(), gens); // generations never go back, across coordinators
            Assert.True(gens[^1] > gens[0], "the second cluster formed a newer worker group");
            // the new workers trained exactly the steps after the checkpoint, each once, and end where the uninterrupted run did
            for (int i = 0; i < 100 && w0.Steps + checkpoint < Steps; i++) await Task.Delay(50, ct);
            Assert.Equal(ledger.Steps.Skip((int)checkpoint).SelectMany(e => e.SampleIds).Order(), w0.Seen.Concat(w1.Seen).Order());
            Assert.Equal(reference, w0.Params);
            Assert.Equal(reference, w1.Params);
        }
        finally
        {
            await two.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Journal_options_name_the_plugin_keys_and_refuse_bad_values()
    {
        var sqlite = NodeOptions.ParseJournal($"sqlite:{Path.Combine(_root, "j.db")}").Validate();
        Assert.Equal(JournalKind.Sqlite, sqlite.Kind);
        var hocon = Akka.Configuration.ConfigurationFactory.ParseString(sqlite.ToHocon());
        Assert.Equal("akka.persistence.journal.sql", hocon.GetString("akka.persistence.journal.plugin"));
        Assert.Equal("SQLite.MS", hocon.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal($"Data Source={Path.Combine(_root, "j.db")}", hocon.GetString("akka.persistence.snapshot-store.sql.connection-string"));

        var pg = NodeOptions.ParseJournal("postgresql:Host=db;Database=higgs;Password=a\"b").Validate();
        hocon = Akka.Configuration.ConfigurationFactory.ParseString(pg.ToHocon());
        Assert.Equal("PostgreSQL.15", hocon.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("Host=db;Database=higgs;Password=a\"b", hocon.GetString("akka.persistence.journal.sql.connection-string"));

        Assert.Equal(JournalKind.Memory, NodeOptions.ParseJournal("memory").Kind);
        hocon = Akka.Configuration.ConfigurationFactory.ParseString(CoordinatorJournal.InMemory.ToHocon());
        Assert.Equal("akka.persistence.journal.inmem", hocon.GetString("akka.persistence.journal.plugin"));
        Assert.Equal("akka.persistence.snapshot-store.inmem", hocon.GetString("akka.persistence.snapshot-store.plugin"));
        Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => NodeOptions.ParseJournal("mysql:x"));
        var missing = Path.Combine(_root, "no-such-folder", "j.db");
        Assert.Contains("no-such-folder", Assert.Throws<ArgumentException>(() => CoordinatorJournal.SqliteFile(missing).Validate()).Message);
        Assert.Throws<ArgumentException>(() => new CoordinatorJournal { Kind = JournalKind.PostgreSql }.Validate());
    }

    [Fact(Timeout = 60_000)]
    public async Task The_in_process_cluster_journals_in_memory_and_writes_no_snapshot_folder()
    {
        var ct = TestContext.Current.CancellationToken;
        var o = InProcessCluster.NodeOptionsFor(LocalPorts.Next());
        Assert.Equal(JournalKind.Memory, o.Journal.Kind);
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(o.SystemName, (b, _) => b.AddHiggsNode(o))).Build();
        await host.StartAsync(ct);
        try
        {
            var config = host.Services.GetRequiredService<ActorSystem>().Settings.Config;
            Assert.Equal("akka.persistence.journal.inmem", config.GetString("akka.persistence.journal.plugin"));
            Assert.Equal("akka.persistence.snapshot-store.inmem", config.GetString("akka.persistence.snapshot-store.plugin"));
            // the coordinator recovered (journal and snapshot store were used) and answers
            var c = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var st = await c.Ask<RunStatus>(new GetRunStatus("none"), TimeSpan.FromSeconds(20), ct);
            Assert.Equal("unknown run", st.Detail);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
