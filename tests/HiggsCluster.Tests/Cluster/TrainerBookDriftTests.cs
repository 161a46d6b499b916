using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The engine loop and the default path (the cluster's actors in one process) keep one set of books: the same best,
/// the same early stop, and patience that survives a resume. The runs do not learn (a learning rate too small to move
/// an fp32 weight), so every validation loss equals the baseline and patience runs out at a known step.
/// </summary>
[Trait("Category", "Cluster")]
[Collection("Engine")]
public sealed class TrainerBookDriftTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-books-" + Guid.NewGuid().ToString("N"));
    private DemoWorkspace? _ws;

    private TrainOptions NotLearning(string dir, int patience)
    {
        _ws ??= DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 12, seed: 5, hidden: 32, layers: 2);
        var o = _ws.TrainOptions(Path.Combine(_root, dir), maxSteps: 8);
        o.BatchSize = 2; o.GradAccumulation = 1; o.Ranks = 1; o.ValidationFraction = 0.3;
        o.Lr = 1e-30; o.WeightDecay = 0; o.ValSteps = 1; o.SaveSteps = 1; o.KeepLast = 20; o.EarlyStoppingPatience = patience;
        o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    private static TrainingOutcome Cluster(TrainOptions o, string? resume = null) =>
        InProcessCluster.Train(o, workers: 1, new LineProgress(TextWriter.Null, 1000), resume, timeout: TimeSpan.FromMinutes(4));

    [Fact(Timeout = 300_000)]
    public void The_baseline_counts_as_best_and_patience_ends_the_run_at_the_same_step_on_both_paths()
    {
        TrainingOutcome engine;
        using (var s = TrainingSession.Open(NotLearning("engine", patience: 3), TextWriter.Null))
            engine = new TrainingRun(s, new LineProgress(TextWriter.Null, 1000)).Run();
        var cluster = Cluster(NotLearning("cluster", patience: 3));

        // baseline (step 0) is the best; validations 1, 2, 3 do not improve on it: patience 3 is spent after step 3
        Assert.Equal(0, engine.Best?.Step);
        Assert.Equal(engine.Best?.Step, cluster.Best?.Step);
        Assert.True(engine.EarlyStopped);
        Assert.True(cluster.EarlyStopped);
        Assert.Equal(3, engine.NextStep);
        Assert.Equal(engine.NextStep, cluster.NextStep);
    }

    [Fact(Timeout = 300_000)]
    public void Early_stopping_patience_survives_a_resume_on_the_default_path()
    {
        var full = Cluster(NotLearning("full", patience: 3));
        Assert.True(full.EarlyStopped);

        // the checkpoint of step 2 carries the validations without improvement that came before it
        var ck = Path.Combine(_root, "full", "checkpoints", TrainerCheckpoint.NameFor(2));
        var state = System.Text.Json.JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(ck, TrainerCheckpoint.StateFile)))!;
        Assert.True(state.ValidationsWithoutImprovement > 0, $"checkpoint of step 2 says {state.ValidationsWithoutImprovement} validations without improvement");

        var again = NotLearning("resumed", patience: 3);
        CopyDir(Path.Combine(_root, "full", "checkpoints"), Path.Combine(again.OutputDir, "checkpoints"));
        var resumed = Cluster(again, resume: Path.Combine(again.OutputDir, "checkpoints", TrainerCheckpoint.NameFor(2)));
        Assert.True(resumed.EarlyStopped);
        Assert.Equal(full.NextStep, resumed.NextStep);
    }

    /// <summary>`higgs train` by default: the session that checks the run and both workers' models, one read of the base.</summary>
    [Fact(Timeout = 300_000)]
    public void The_default_path_reads_the_base_model_from_disk_once_per_process()
    {
        var o = NotLearning("once", patience: 0);
        o.Ranks = 2; o.MaxSteps = 2; o.Lr = 1e-4;
        var stdout = new StringWriter();
        int code = global::HiggsCluster.Cli.Commands.TrainCommand.Execute(o, resume: null, dryRunOnly: false, stdout, new StringWriter(), dryRunFirst: false, clusterWorkers: 2);
        Assert.True(code == 0, stdout.ToString());
        Assert.True(File.Exists(Path.Combine(o.OutputDir, "adapter", "adapter_model.safetensors")));
        Assert.Equal(1, BaseModels.DiskReads(o.BaseModelDir));
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to));
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
