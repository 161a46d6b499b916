using System.Text;
using System.Text.Json;
using Akka.Actor;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The coordinator journal's own format: stable names, a version field, every event kind round-trips.</summary>
public sealed class JournalSerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("journal-format");
    private JournalSerializer Serializer => new((ExtendedActorSystem)_system);

    private static RunSpec Spec() => ToyCluster.Spec("j", ranks: 2, micro: 1, accum: 2, shards: 3, save: 2, val: 3, seed: 11, startWorkers: 2) with
    {
        ResumeFrom = "/ckpt/step-4", StartStep = 4, ResumeBestLoss = 1.25, ResumeValidationsWithoutImprovement = 1, ResumeBestStep = 3,
        Options = HiggsCluster.Tests.Engine.RunOptionsTests.Unusual() with
        {
            Ranks = 2, BatchSize = 1, GradAccumulation = 2, SaveSteps = 2, ValSteps = 3, Seed = 11, EarlyStoppingPatience = 2, ValidationFraction = 0.2,
        },
    };

    private static IReadOnlyList<object> OneOfEach() => new object[]
    {
        new RunEvents.Submitted(Spec()),
        new RunEvents.Planned("j", new long[] { 3, 1, 2 }, new long[] { 9 }, new[] { "entry 7: no audio" }),
        new RunEvents.StepCommitted("j", new StepRecord(4, 1, 7, 2, new long[] { 1, 3 }), new[] { 2.0, double.NaN, double.PositiveInfinity, 0.1 }),
        new RunEvents.CheckpointStarted("j", 5, "step-5", false),
        new RunEvents.CheckpointDone("j", 5, "/out/step-5"),
        new RunEvents.CheckpointDone("j", 6),
        new RunEvents.ValidationStarted("j", 6, true),
        new RunEvents.ValidationDone("j", 6, 0.123456789012345),
        new RunEvents.CheckpointRequested("j", null),
        new RunEvents.ValidationRequested("j"),
        new RunEvents.Ended("j", RunPhase.Completed, "completed after 9 steps"),
        new RunEvents.RolledBack("j", 3, null, null, 0),
        new WorkerGroupFormed(12),
    };

    /// <summary>Records holding arrays compare by reference, so events are compared through their journal records' JSON.</summary>
    private static string Canonical(object e) => JsonSerializer.Serialize(JournalFormat.ToRecord(e), JournalFormat.ToRecord(e).GetType(),
        new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });

    [Fact]
    public void Every_event_kind_round_trips()
    {
        var s = Serializer;
        foreach (var e in OneOfEach())
        {
            var back = s.FromBinary(s.ToBinary(e), s.Manifest(e));
            Assert.Equal(e.GetType(), back.GetType());
            Assert.Equal(Canonical(e), Canonical(back));
        }
        var spec = ((RunEvents.Submitted)s.FromBinary(s.ToBinary(OneOfEach()[0]), "run-submitted")).Spec;
        Assert.Equal(Spec(), spec);
        Assert.Equal(Spec().Options.Manifests, spec.Options.Manifests);
    }

    [Fact]
    public void A_spec_is_written_with_typed_options_and_an_older_row_with_a_config_map_is_read_through_the_parser()
    {
        var s = Serializer;
        using (var doc = JsonDocument.Parse(s.ToBinary(new RunEvents.Submitted(Spec()))))
        {
            var spec = doc.RootElement.GetProperty("spec");
            Assert.False(spec.TryGetProperty("config", out _));
            Assert.Equal(0.2, spec.GetProperty("options").GetProperty("data.validation_fraction").GetDouble());
            Assert.Equal(2, spec.GetProperty("options").GetProperty("data.manifests").GetArrayLength());
        }

        // a row as the coordinator wrote it before typed options: the resolved key → text map
        var config = new Dictionary<string, string> { ["train.lr"] = "0.001", ["lora.targets"] = "q_proj,v_proj", ["model.device"] = "cuda:1",
            ["data.manifests"] = "[{\"path\":\"/d/a.jsonl\",\"weight\":3}]" };
        string Row(IReadOnlyDictionary<string, string> map) => "{\"v\":1,\"spec\":{\"runId\":\"old\",\"config\":" + JsonSerializer.Serialize(map) +
            ",\"ranks\":2,\"microBatchSize\":1,\"gradAccumulation\":2,\"epochs\":1,\"maxSteps\":0,\"saveSteps\":5,\"valSteps\":0,\"seed\":11," +
            "\"validationFraction\":0.05,\"separateValidation\":false,\"shardCount\":3,\"startWorkers\":1,\"earlyStoppingPatience\":0," +
            "\"resumeFrom\":null,\"startStep\":0,\"resumeBestLoss\":null,\"resumeValidationsWithoutImprovement\":0}}";
        var old = ((RunEvents.Submitted)s.FromBinary(Encoding.UTF8.GetBytes(Row(config)), "run-submitted")).Spec;
        // the row's plan numbers are what that coordinator planned with: they go into the options
        Assert.Equal(HiggsCluster.Planning.RunOptionKeys.FromResolved(config) with
        {
            Ranks = 2, BatchSize = 1, GradAccumulation = 2, Epochs = 1, MaxSteps = 0, SaveSteps = 5, ValSteps = 0, Seed = 11,
            ValidationFraction = 0.05, EarlyStoppingPatience = 0,
        }, old.Options);
        Assert.Equal((0.001, "cuda:1", 2), (old.Options.Lr, old.Options.Device, old.Options.LoraTargets.Count));
        Assert.Equal(new[] { 3.0 }, old.Options.CorpusWeights);
        Assert.Equal(("old", 2, 3), (old.RunId, old.Ranks, old.ShardCount));
        // and one the parser refuses names its key
        var e = Assert.Throws<HiggsCluster.Planning.TrainConfigException>(() =>
            s.FromBinary(Encoding.UTF8.GetBytes(Row(new Dictionary<string, string> { ["lora.r"] = "sixteen" })), "run-submitted"));
        Assert.Equal("lora.r", e.Key);
    }

    [Fact]
    public void Every_journalled_event_type_has_a_stable_name()
    {
        var kinds = typeof(RunEvents).GetNestedTypes().Where(t => t.IsSubclassOf(typeof(RunEvent))).Append(typeof(WorkerGroupFormed)).ToList();
        Assert.All(kinds, t => Assert.True(JournalSerializer.Names.ContainsKey(t), $"{t.Name} has no journal name"));
        Assert.Equal(kinds.Count, JournalSerializer.Names.Values.Distinct().Count());
        Assert.All(OneOfEach(), e => Assert.Equal(JournalSerializer.Names[e.GetType()], Serializer.Manifest(e)));
    }

    [Fact]
    public void Payloads_are_versioned_json_without_type_names()
    {
        var s = Serializer;
        foreach (var e in OneOfEach())
        {
            var json = Encoding.UTF8.GetString(s.ToBinary(e));
            using var doc = JsonDocument.Parse(json);
            Assert.Equal(JournalSerializer.Version, doc.RootElement.GetProperty("v").GetInt32());
            Assert.DoesNotContain("HiggsCluster", json);
        }
    }

    [Fact]
    public void A_newer_format_or_an_unknown_kind_is_refused_with_its_name()
    {
        var s = Serializer;
        var newer = Assert.Throws<InvalidDataException>(() => s.FromBinary("{\"v\":2,\"generation\":3}"u8.ToArray(), "worker-group-formed"));
        Assert.Contains("worker-group-formed", newer.Message);
        Assert.Contains("version 2", newer.Message);
        Assert.Contains("'run-paused'", Assert.Throws<InvalidDataException>(() => s.FromBinary("{\"v\":1}"u8.ToArray(), "run-paused")).Message);
        Assert.Contains("step-committed", Assert.Throws<InvalidDataException>(() => s.FromBinary("{\"v\":1,"u8.ToArray(), "step-committed")).Message);
        Assert.Contains("unknown phase", Assert.Throws<InvalidDataException>(() =>
            s.FromBinary("{\"v\":1,\"runId\":\"j\",\"phase\":\"Paused\",\"reason\":\"x\"}"u8.ToArray(), "run-ended")).Message);
        Assert.Throws<ArgumentException>(() => s.Manifest(new RunSpec("x", new(), 1)));
    }

    public void Dispose() => _system.Dispose();
}
