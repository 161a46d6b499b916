using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The in-process mode (what `higgs train` and `higgs demo` use): the cluster's actors in one process train the same
/// adapter as the single-process engine loop, bit for bit, with two workers on two plan ranks and LoRA dropout on; a
/// run resumed from one of its checkpoints ends where the uninterrupted run ended.
/// </summary>
[Trait("Category", "Cluster")]
[Collection("Engine")]
public sealed class InProcessClusterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-inproc-" + Guid.NewGuid().ToString("N"));

    private TrainOptions Options(DemoWorkspace ws, string dir)
    {
        var o = ws.TrainOptions(Path.Combine(_root, dir), maxSteps: 6);
        o.BatchSize = 2; o.GradAccumulation = 1; o.Ranks = 2; o.LoraDropout = 0.2; o.ValSteps = 2; o.SaveSteps = 3;
        o.Progress = "off"; o.TensorBoard = true; o.Plots = true;
        return o;
    }

    private static void AssertSameAdapter(string expectedDir, string actualDir)
    {
        var mine = SafetensorsFile.ReadAll(Path.Combine(actualDir, "adapter_model.safetensors"));
        var theirs = SafetensorsFile.ReadAll(Path.Combine(expectedDir, "adapter_model.safetensors"));
        Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
        foreach (var (name, t) in theirs) Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), name);
    }

    [Fact(Timeout = 300_000)]
    public void Two_workers_in_one_process_train_the_engine_loops_adapter_and_a_resume_ends_at_the_same_adapter()
    {
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 12, seed: 9, hidden: 32, layers: 2);
        TrainingOutcome reference;
        using (var s = TrainingSession.Open(Options(ws, "single"), TextWriter.Null))
            reference = new TrainingRun(s, new LineProgress(TextWriter.Null, 1000)).Run();

        var log = new StringWriter();
        var r = InProcessCluster.Train(Options(ws, "cluster"), workers: 2, new LineProgress(log, 1), timeout: TimeSpan.FromMinutes(4));
        Assert.Equal(6, r.NextStep);
        AssertSameAdapter(reference.AdapterDir, r.AdapterDir);
        Assert.Contains("step      6", log.ToString());
        // the artifacts of the engine loop: metrics, checkpoints, TensorBoard, plots, report
        Assert.Equal(6, RunHistory.Read(r.MetricsPath).Steps.Count);
        Assert.Equal(reference.Best?.Step, r.Best?.Step);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(r.OutputDir, "tensorboard"), "events.out.tfevents.*"));
        Assert.All(r.Plots, p => Assert.True(File.Exists(p), p));
        Assert.Contains("# Training run report", File.ReadAllText(r.ReportPath));
        Assert.Equal(reference.ConsumedSamples.Order(), r.ConsumedSamples.Order());

        // resume from an intermediate checkpoint (the ones pruning kept) in a copy of the run folder: same end
        var from = TrainerCheckpoint.List(Path.Combine(_root, "cluster", "checkpoints")).First(c => c.Step < 6);
        var again = Path.Combine(_root, "resumed");
        CopyDir(Path.Combine(_root, "cluster", "checkpoints"), Path.Combine(again, "checkpoints"));
        File.Copy(r.MetricsPath, Path.Combine(again, "metrics.jsonl"));
        var o = Options(ws, "resumed");
        var resumed = InProcessCluster.Train(o, workers: 2, new LineProgress(TextWriter.Null, 1), resume: Path.Combine(again, "checkpoints", TrainerCheckpoint.NameFor(from.Step)),
            timeout: TimeSpan.FromMinutes(4));
        Assert.Equal(6 - from.Step, resumed.StepsRun);
        AssertSameAdapter(reference.AdapterDir, resumed.AdapterDir);
        Assert.Equal(6, RunHistory.Read(resumed.MetricsPath).Steps.Count); // history up to the checkpoint kept, the rest rewritten
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
