using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Engine;

[Collection("Engine"), Trait("Category", "Engine")]
public sealed class CheckpointAndConfigTests
{
    [Fact]
    public void Crash_between_temp_write_and_rename_leaves_the_previous_checkpoint_loadable()
    {
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), maxSteps: 4);
        using var s = EngineWorkspace.Open(o);
        var root = tmp.File("ck");
        var ids = s.TrainIds.Take(2).ToArray();
        void Step(long i) { using var scope = NewDisposeScope(); s.Engine.ApplyGradients(s.Engine.ComputeGradients(new[] { s.Store.Collate(ids) }), i); }
        Step(0);
        var good = TrainerCheckpoint.SaveAtomic(root, s.Adapter, s.Engine.Optimizer, new TrainerState { NextStep = 1, TotalSteps = 4, ConsumedSamples = ids });
        var saved = s.Adapter.NamedParameters().ToDictionary(p => p.Key, p => p.Param.detach().clone());
        Step(1);
        Assert.Throws<IOException>(() => TrainerCheckpoint.SaveAtomic(root, s.Adapter, s.Engine.Optimizer, new TrainerState { NextStep = 2, TotalSteps = 4 },
            beforeRename: _ => throw new IOException("simulated crash")));
        Assert.Single(Directory.GetDirectories(root, ".tmp-*"));
        Assert.Equal(good, TrainerCheckpoint.Resolve(root, "latest"));
        var state = TrainerCheckpoint.Load(good, s.Adapter, s.Engine.Optimizer);
        Assert.Equal(1, state.NextStep);
        Assert.Equal(ids, state.ConsumedSamples);
        foreach (var (k, p) in s.Adapter.NamedParameters()) Assert.True(EngineWorkspace.Same(p.detach(), saved[k]), k);
        Assert.All(s.Engine.Optimizer.Parameters, p => Assert.Equal(1, s.Engine.Optimizer.StepOf(p.Name)));
        TrainerCheckpoint.Prune(root, keepLast: 3, bestStep: null);
        Assert.Empty(Directory.GetDirectories(root, ".tmp-*"));
    }

    [Fact]
    public void Config_merges_yaml_environment_and_overrides_and_names_bad_keys()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("m.jsonl"), "");
        var yaml = tmp.File("c.yaml");
        File.WriteAllText(yaml, "data:\n  manifest: m.jsonl\ntrain:\n  lr: 0.001\n  batch_size: 2\n  epochs: 3\nlora:\n  r: 4\n  targets: [q_proj, v_proj]\n");
        var env = new Dictionary<string, string> { ["HIGGS_TRAIN__BATCH_SIZE"] = "5", ["HIGGS_TRAIN__EPOCHS"] = "7", ["HIGGS_UNRELATED"] = "x" };
        var o = TrainConfig.Load(yaml, new[] { KeyValuePair.Create("epochs", "9") }, env);
        Assert.Equal(0.001, o.Lr);
        Assert.Equal(5, o.BatchSize);      // environment over YAML
        Assert.Equal(9, o.Epochs);         // command line over environment
        Assert.Equal(4, o.LoraR);
        Assert.Equal(new[] { "q_proj", "v_proj" }, o.LoraTargets);
        Assert.Equal(Path.Combine(tmp.Path, "m.jsonl"), o.Manifest); // relative to the YAML file

        File.WriteAllText(yaml, "train:\n  lr: fast\n");
        Assert.Equal("train.lr", Assert.Throws<TrainConfigException>(() => TrainConfig.Load(yaml, [], null)).Key);
        File.WriteAllText(yaml, "train:\n  learning_rate: 0.1\n");
        Assert.Contains("train.learning_rate", Assert.Throws<TrainConfigException>(() => TrainConfig.Load(yaml, [], null)).Message);
        Assert.Equal("train.schedule", Assert.Throws<TrainConfigException>(() => TrainConfig.Load(null, [KeyValuePair.Create("schedule", "zigzag")], null)).Key);

        var good = EngineWorkspace.Options(tmp.File("run"), 4);
        good.Validate();
        var bad = good.Clone(); bad.BatchSize = 0;
        Assert.Equal("train.batch_size", Assert.Throws<TrainConfigException>(() => bad.Validate()).Key);
        bad = good.Clone(); bad.LoraDropout = 1.5;
        Assert.Equal("lora.dropout", Assert.Throws<TrainConfigException>(() => bad.Validate()).Key);
        bad = good.Clone(); bad.Manifest = tmp.File("missing.jsonl");
        Assert.Equal("data.manifest", Assert.Throws<TrainConfigException>(() => bad.Validate()).Key);
        bad = good.Clone(); bad.BaseModelDir = tmp.Path;
        Assert.Equal("model.base_checkpoint", Assert.Throws<TrainConfigException>(() => bad.Validate()).Key);
    }
}
