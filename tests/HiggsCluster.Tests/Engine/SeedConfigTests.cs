using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>configs/seed.yaml: the seed's run as a config holds the seed's numbers and passes a dry run on the demo data.</summary>
[Collection("Engine"), Trait("Category", "Engine")]
public sealed class SeedConfigTests
{
    private static string SeedYaml => Path.Combine(RepoPaths.Root, "configs", "seed.yaml");

    [Fact]
    public void Seed_config_holds_the_seeds_run()
    {
        var o = TrainConfig.Load(SeedYaml, []);
        Assert.Equal((8, 4, 8, 1.0, 2e-4, 500, 500, "seed"),
            (o.Ranks, o.BatchSize, o.GradAccumulation, o.Epochs, o.Lr, o.ValSteps, o.SaveSteps, o.CollatorPreset));
        // paths are relative to the file, as in train.example.yaml
        Assert.Equal(Path.Combine(RepoPaths.Root, "data", "train.jsonl"), o.Manifest);
        Assert.Equal(Path.Combine(RepoPaths.Root, "runs", "seed"), o.OutputDir);
    }

    [Fact]
    public void Seed_config_passes_a_dry_run_on_the_demo_data_with_its_paths_overridden()
    {
        using var tmp = new TempDir();
        var w = EngineWorkspace.Workspace;
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int code = CommandTable.Dispatch(new[]
        {
            "train", "--config", SeedYaml, "--dry-run", "--engine",
            "--data.manifest=" + w.Data.Manifest, "--data.data_root=" + w.Data.Folder, "--data.text_tokenizer=" + w.TextTokenizer,
            "--data.audio_tokenizer=" + w.AudioTokenizer, "--data.code_cache=" + tmp.File("codes"), "--model.base_checkpoint=" + w.BaseModel,
            "--train.output_dir=" + tmp.File("run"), "--model.device=cpu", "--log.progress=off",
        }, stdout, stderr);
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("collator preset 'seed'", stderr.ToString()); // the seed's layout contradicts the model config, and says so
        Assert.Contains("1 steps (1 per epoch)", stdout.ToString());  // global batch 256 over the demo's entries: one step
    }
}
