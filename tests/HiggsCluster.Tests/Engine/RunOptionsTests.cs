using System.Text.Json;
using HiggsCluster.Cli.Node;
using HiggsCluster.Planning;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// The typed options a run carries: one text table reads and writes them, TrainOptions is the same values behind
/// setters, and a spec is validated once where it is made, refusing a bad value by its key.
/// </summary>
public sealed class RunOptionsTests
{
    /// <summary>Every value away from its default (not a valid run: data.manifest and data.manifests are both set).</summary>
    internal static RunOptions Unusual() => new RunOptions() with
    {
        Manifest = "/data/one.jsonl", ValidationManifest = "/data/val.jsonl", DataRoot = "/data", CollatorPreset = "seed",
        Manifests = new[] { new Corpus("/data/a.jsonl", 3, "/data/a"), new Corpus("/data/b, \"quoted\".jsonl", 0.5) },
        TextTokenizer = "/m/tokenizer.json", AudioTokenizer = "/m/audio", BaseModelDir = "/m/base", OutputDir = "/out/run",
        CodeCache = "/out/codes", MaxTokens = 4096, MaxAudioSeconds = null, MaxEntryBytes = 4 << 20, ValidationFraction = 0.125, Device = "cuda:1", DType = "bf16",
        HubId = "owner/name", Revision = "main", LoraR = 8, LoraAlpha = 16.5, LoraDropout = 0, LoraTargets = new[] { "q_proj", "v_proj" },
        BatchSize = 3, GradAccumulation = 4, Ranks = 6, Devices = "0,3", GradientCheckpointing = true, Epochs = 2.5, MaxSteps = 77,
        Lr = 3.0000000000000001e-5, WarmupSteps = 9, Schedule = ScheduleKind.Linear, WeightDecay = 0, Beta1 = 0.8, Beta2 = 0.99, Eps = 1e-6,
        MaxGradNorm = 0, Seed = 1234567890123, LossNormalisation = LossNormalisation.Tokens, NanPatience = 2, TextLossWeight = 0.25,
        AudioLossWeight = 2, ValSteps = 0, EarlyStoppingPatience = 3, Samples = 0, SampleTexts = new[] { "Hello there.", "Bye: now" },
        SampleMaxSeconds = 7.5, SaveSteps = 11, KeepLast = 1, LogSteps = 5, TensorBoard = false, Plots = false, Progress = "off",
    };

    [Fact]
    public void Every_key_writes_and_reads_back_its_value_exactly()
    {
        var o = Unusual();
        var text = RunOptionKeys.Resolved(o);
        Assert.Equal(RunOptionKeys.All.Select(k => k.Name), text.Select(kv => kv.Key));
        var back = RunOptionKeys.FromResolved(text);
        Assert.Equal(o, back);
        Assert.Equal(o.Manifests, back.Manifests);
        Assert.Equal(o.LoraTargets, back.LoraTargets);
        Assert.Equal(o.SampleTexts, back.SampleTexts);
        Assert.Equal((o.Lr, o.Seed, o.MaxAudioSeconds, o.Schedule), (back.Lr, back.Seed, back.MaxAudioSeconds, back.Schedule));
        // each key reads back what it wrote, alone, and its value is away from the default (so the checks above see it)
        foreach (var k in RunOptionKeys.All)
        {
            Assert.Equal(k.Get(o), k.Get(k.Set(new RunOptions(), k.Get(o))));
            Assert.True(k.Get(o) != k.Get(new RunOptions()), $"{k.Name} is at its default in Unusual()");
        }
    }

    [Fact]
    public void Records_are_equal_by_value_lists_included()
    {
        var a = Unusual();
        var b = Unusual();
        Assert.NotSame(a.LoraTargets, b.LoraTargets);
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, a with { LoraTargets = new[] { "q_proj" } });
        Assert.NotEqual(a, a with { Manifests = new[] { a.Manifests[0] with { Weight = 3.5 } } });
        Assert.NotEqual(a, a with { Lr = a.Lr * (1 + 1e-15) });
    }

    [Fact]
    public void A_malformed_value_is_refused_by_the_parser_naming_its_key()
    {
        Assert.Equal("train.lr", Assert.Throws<TrainConfigException>(() => RunOptionKeys.FromResolved(new Dictionary<string, string> { ["train.lr"] = "fast" })).Key);
        Assert.Equal("train.schedule", Assert.Throws<TrainConfigException>(() => RunOptionKeys.FromResolved(new Dictionary<string, string> { ["train.schedule"] = "step" })).Key);
        Assert.Equal("data.manifests[1].weight", Assert.Throws<TrainConfigException>(() =>
            RunOptionKeys.FromResolved(new Dictionary<string, string> { ["data.manifests"] = "[{\"path\":\"a\"},{\"path\":\"b\",\"weight\":\"lots\"}]" })).Key);
        Assert.Equal("train.color", Assert.Throws<TrainConfigException>(() => RunOptionKeys.FromResolved(new Dictionary<string, string> { ["train.color"] = "red" })).Key);
    }

    [Fact]
    public void TrainOptions_are_the_record_behind_setters()
    {
        var o = TrainOptions.From(Unusual());
        Assert.Equal(Unusual(), o.ToRecord());
        o.Lr = 0.5;
        o.LoraTargets = new[] { "o_proj" };
        Assert.Equal(Unusual() with { Lr = 0.5, LoraTargets = new[] { "o_proj" } }, o.ToRecord());
        var clone = o.Clone();
        clone.BatchSize = 99;
        Assert.Equal(3, o.BatchSize);
        // the setter table is the record's table
        var viaKeys = new TrainOptions();
        foreach (var k in TrainOptions.Keys) k.Set(viaKeys, k.Get(o));
        Assert.Equal(o.ToRecord(), viaKeys.ToRecord());
        Assert.Equal(RunOptionKeys.Resolved(o.ToRecord()), o.Resolved());
    }

    [Fact]
    public void The_json_form_names_each_value_by_its_config_key_and_reads_back()
    {
        var json = JsonSerializer.Serialize(Unusual());
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(RunOptionKeys.All.Select(k => k.Name).Order(StringComparer.Ordinal),
            doc.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("linear", doc.RootElement.GetProperty("train.schedule").GetString()!.ToLowerInvariant());
        Assert.Equal("/data/a", doc.RootElement.GetProperty("data.manifests")[0].GetProperty("data_root").GetString());
        Assert.Equal(Unusual(), JsonSerializer.Deserialize<RunOptions>(json));
    }

    [Fact]
    public void A_spec_is_validated_once_where_it_is_made_and_carries_absolute_paths()
    {
        using var tmp = new HiggsCluster.Tests.Audio.TempDir();
        var o = EngineWorkspace.Options(tmp.File("out"), maxSteps: 2);
        var bad = o.Clone();
        bad.LoraDropout = 1.5;
        Assert.Equal("lora.dropout", Assert.Throws<TrainConfigException>(() => RunSpecFactory.From(bad, "r")).Key);
        bad = o.Clone();
        bad.CollatorPreset = "fancy";
        Assert.Equal("data.collator_preset", Assert.Throws<TrainConfigException>(() => RunSpecFactory.From(bad, "r")).Key);
        bad = o.Clone();
        bad.Manifest = tmp.File("missing.jsonl");
        Assert.Equal("data.manifest", Assert.Throws<TrainConfigException>(() => RunSpecFactory.From(bad, "r", checkFiles: true)).Key);

        var cwd = Environment.CurrentDirectory;
        var relative = o.Clone();
        relative.OutputDir = "runs/x";
        var spec = RunSpecFactory.From(relative, "r", shardCount: 4, startWorkers: 2);
        Assert.Equal(Path.Combine(cwd, "runs", "x"), spec.Options.OutputDir);
        Assert.True(Path.IsPathRooted(spec.Options.Manifest) && Path.IsPathRooted(spec.Options.BaseModelDir));
        Assert.Equal((o.Ranks, o.BatchSize, o.GradAccumulation, (ulong)o.Seed, 4, 2), (spec.Ranks, spec.MicroBatchSize, spec.GradAccumulation, spec.Seed, spec.ShardCount, spec.StartWorkers));
        Assert.Equal(spec.Options, RunSpecFactory.Options(spec).ToRecord());
    }
}
