using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Engine;

[Collection("Engine"), Trait("Category", "Engine")]
public sealed class ValidationOptionsTests
{
    [Fact]
    public void A_separate_validation_manifest_replaces_the_hash_split()
    {
        using var tmp = new TempDir();
        var ws = EngineWorkspace.Workspace;
        // relative audio urls resolve against the manifest's folder, so the validation manifest lives beside the data
        var valManifest = Path.Combine(ws.Data.Folder, $"val-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(valManifest, File.ReadLines(ws.Data.Manifest).Take(3));
        try
        {
            var o = EngineWorkspace.Options(tmp.File("run"), maxSteps: 2);
            o.ValidationManifest = valManifest;
            o.ValidationFraction = 0.5; // ignored when a validation manifest is given
            using var s = EngineWorkspace.Open(o);
            int trainEntries = File.ReadLines(ws.Data.Manifest).Count();
            Assert.Equal(trainEntries, s.TrainIds.Count);
            Assert.Equal(3, s.ValidationIds.Count);
            Assert.Empty(s.TrainIds.Intersect(s.ValidationIds));
        }
        finally { File.Delete(valManifest); }
    }

    [Fact]
    public void Early_stopping_ends_the_run_after_patience_validations_without_improvement()
    {
        using var tmp = new TempDir();
        var outcome = RunWithoutLearning(tmp.File("run"), maxSteps: 12, patience: 2);
        Assert.True(outcome.EarlyStopped);
        Assert.Equal(2, outcome.StepsRun);
        Assert.Equal(0, outcome.Best!.Step);

        // with patience off the same run goes to the end
        using var tmp2 = new TempDir();
        var full = RunWithoutLearning(tmp2.File("run"), maxSteps: 4, patience: 0);
        Assert.False(full.EarlyStopped);
        Assert.Equal(4, full.StepsRun);
    }

    /// <summary>A run whose learning rate is too small to move any fp32 weight: every validation loss equals the baseline.</summary>
    private static TrainingOutcome RunWithoutLearning(string outputDir, int maxSteps, int patience)
    {
        var o = EngineWorkspace.Options(outputDir, maxSteps);
        o.Lr = 1e-30; o.WeightDecay = 0; o.ValSteps = 1; o.EarlyStoppingPatience = patience;
        o.ValidationFraction = 0.3; o.Plots = false; o.TensorBoard = false;
        using var s = EngineWorkspace.Open(o);
        return new TrainingRun(s, new LineProgress(TextWriter.Null, 1)).Run();
    }
}
