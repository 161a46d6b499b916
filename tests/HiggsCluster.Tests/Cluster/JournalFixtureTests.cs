using HiggsCluster.Tests.Harness;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Akka.Serialization;
using HiggsCluster.Messages.Serialization;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A coordinator journal written before the journal had its own format still replays to the same run.
/// Fixtures/coordinator-journal-hyperion.db is the SQLite journal file CoordinatorJournalTests' restart run left (commit
/// 4b7eced): a run submitted, planned and trained by one cluster with checkpoints every 5 steps, the cluster stopped, a
/// second cluster with new workers (newer group generations) rolled back to the last checkpoint and completed it; its
/// events are Hyperion-serialised records. Fixtures/coordinator-journal-hyperion.state.json is what that code replayed
/// it to (recorded with HIGGS_RECORD_JOURNAL_STATE=file).
/// </summary>
[Trait("Category", "Cluster")]
public sealed class JournalFixtureTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");
    private static string Journal => Path.Combine(Fixtures, "coordinator-journal-hyperion.db");
    private static string Expected => Path.Combine(Fixtures, "coordinator-journal-hyperion.state.json");
    private readonly string _root = Directory.CreateTempSubdirectory("higgs-journal-fixture-").FullName;

    /// <summary>What a replayed run is, as far as a successor coordinator and the user see it.</summary>
    public sealed record Ledger(long Step, int Epoch, long Generation, int World, long[] Samples);
    public sealed record ReplayedRun(string RunId, string Phase, long CommittedSteps, long TotalSteps, long[] PlanIds, double[] LastTotals,
        long? CheckpointStep, string? CheckpointPath, double? BestLoss, int ValidationsWithoutImprovement, bool EarlyStopped,
        string Detail, long NewestGeneration, Ledger[] Steps);

    /// <summary>The journal's rows in order: the serializer that wrote each, its manifest and bytes.</summary>
    private static List<(int Serializer, string Manifest, byte[] Bytes)> Rows(string db)
    {
        using var c = new SqliteConnection($"Data Source={db};Mode=ReadOnly");
        c.Open();
        using var q = c.CreateCommand();
        q.CommandText = "SELECT identifier, manifest, message FROM journal WHERE persistence_id = $id AND deleted = 0 ORDER BY sequence_number";
        q.Parameters.AddWithValue("$id", CoordinatorActor.JournalId);
        using var r = q.ExecuteReader();
        var rows = new List<(int, string, byte[])>();
        while (r.Read()) rows.Add((r.GetInt32(0), r.IsDBNull(1) ? "" : r.GetString(1), (byte[])r[2]));
        return rows;
    }

    private static ReplayedRun Replay(IReadOnlyList<object> events)
    {
        var run = RunState.Replay(events.OfType<RunEvent>());
        long newest = events.OfType<WorkerGroupFormed>().Max(g => g.Generation);
        return new ReplayedRun(run.Spec.RunId, run.Phase.ToString(), run.Cursor.GlobalStep, run.Plan?.TotalSteps ?? 0,
            run.Plan?.Ids.ToArray() ?? Array.Empty<long>(), run.LastTotals.ToArray(), run.LastCheckpoint?.Step, run.LastCheckpoint?.Path,
            run.BestValidationLoss, run.ValidationsWithoutImprovement, run.EarlyStopped, run.Detail, newest,
            run.Cursor.Ledger.Select(e => new Ledger(e.GlobalStep, e.Epoch, e.Generation, e.World, e.SampleIds)).ToArray());
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    [Fact]
    public void The_old_journal_replays_to_the_state_it_was_written_in()
    {
        var rows = Rows(Journal);
        Assert.Equal(152, rows.Count);
        using var system = ActorSystem.Create("fixture");
        // rows name the serializer that wrote them: the old ones are Hyperion's (-5), read by Hyperion as every node
        // configures it (their RunSpec holds the old config map, read through the config parser)
        var hyperion = new HyperionSerializer((ExtendedActorSystem)system, RunSpecHyperion.Settings((ExtendedActorSystem)system));
        Assert.All(rows, r => Assert.Equal(hyperion.Identifier, r.Serializer));
        var events = rows.Select(r => hyperion.FromBinary(r.Bytes, typeof(object))).ToList();
        // an empty config map, and the plan numbers that run was planned with (now read from the options)
        Assert.Equal(new HiggsCluster.Planning.RunOptions
        {
            Ranks = 2, BatchSize = 1, GradAccumulation = 2, Epochs = 1, MaxSteps = 0, SaveSteps = 5, ValSteps = 0, Seed = 4, ValidationFraction = 0,
        }, Assert.Single(events.OfType<RunEvents.Submitted>()).Spec.Options);

        var replayed = Replay(events);
        var json = JsonSerializer.Serialize(replayed, Indented);
        if (Environment.GetEnvironmentVariable("HIGGS_RECORD_JOURNAL_STATE") is { } record) File.WriteAllText(record, json);
        Assert.Equal(File.ReadAllText(Expected), json);

        // and what the state says is a whole run: every step once, every sample once, generations never going back
        Assert.Equal(nameof(RunPhase.Completed), replayed.Phase);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), replayed.Steps.Select(s => s.Step));
        Assert.Equal(Enumerable.Range(0, 400).Select(i => (long)i), replayed.Steps.SelectMany(s => s.Samples).Order());
        Assert.Equal(replayed.Steps.Select(s => s.Generation).Order(), replayed.Steps.Select(s => s.Generation));
        Assert.Equal(100, replayed.CheckpointStep);

        // written again in the journal's own format, the same events replay to the same run
        var format = new JournalSerializer((ExtendedActorSystem)system);
        var rewritten = events.Select(e => format.FromBinary(format.ToBinary(e), format.Manifest(e))).ToList();
        Assert.Equal(json, JsonSerializer.Serialize(Replay(rewritten), Indented));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_coordinator_recovers_the_old_journal_and_answers_with_its_ledger()
    {
        var ct = TestContext.Current.CancellationToken;
        var db = Path.Combine(_root, "journal.db");
        File.Copy(Journal, db);
        int port = LocalPorts.Next();
        var o = new NodeOptions
        {
            Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = new[] { CoordinatorHosting.Role },
            Journal = CoordinatorJournal.SqliteFile(db),
        }.Validate();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(o.SystemName, (b, _) => b.AddHiggsNode(o))).Build();
        await host.StartAsync(ct);
        try
        {
            // new events go to the journal in its own format
            var serialization = host.Services.GetRequiredService<ActorSystem>().Serialization;
            Assert.IsType<JournalSerializer>(serialization.FindSerializerFor(new WorkerGroupFormed(1)));
            Assert.IsType<JournalSerializer>(serialization.FindSerializerFor(new RunEvents.ValidationRequested("x")));
            var c = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var expected = JsonSerializer.Deserialize<ReplayedRun>(File.ReadAllText(Expected))!;
            var status = await c.Ask<RunStatus>(new GetRunStatus(expected.RunId), TimeSpan.FromSeconds(30), ct);
            Assert.Equal((RunPhase.Completed, expected.CommittedSteps, expected.TotalSteps, expected.Detail),
                (status.Phase, status.CommittedSteps, status.TotalSteps, status.Detail));
            var ledger = await c.Ask<RunLedger>(new GetRunLedger(expected.RunId), TimeSpan.FromSeconds(10), ct);
            Assert.Equal(expected.PlanIds, ledger.PlannedTrainIds);
            Assert.Equal(expected.Steps.Select(s => (s.Step, s.Epoch, s.Generation, s.World, string.Join(',', s.Samples))),
                ledger.Steps.Select(s => (s.GlobalStep, s.Epoch, s.Generation, s.World, string.Join(',', s.SampleIds))));
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
