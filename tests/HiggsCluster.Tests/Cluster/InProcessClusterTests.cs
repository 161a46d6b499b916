using HiggsCluster.Cli.Node;
using HiggsCluster.Messages;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The in-process mode (`higgs train --workers N`): the cluster's actors in one process train the same adapter as the
/// single-process engine, bit for bit, with two workers on two plan ranks and LoRA dropout on.
/// </summary>
[Trait("Category", "Cluster")]
[Collection("Engine")]
public sealed class InProcessClusterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-inproc-" + Guid.NewGuid().ToString("N"));

    [Fact(Timeout = 300_000)]
    public void Two_workers_in_one_process_train_the_single_process_engines_adapter()
    {
        var ws = DemoWorkspace.Create(Path.Combine(_root, "ws"), entries: 10, seed: 9, hidden: 32, layers: 2);
        TrainOptions Options(string dir)
        {
            var o = ws.TrainOptions(Path.Combine(_root, dir), maxSteps: 6);
            o.BatchSize = 2; o.GradAccumulation = 1; o.Ranks = 2; o.LoraDropout = 0.2; o.ValSteps = 0; o.SaveSteps = 3;
            o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
            return o;
        }
        TrainingOutcome reference;
        using (var s = TrainingSession.Open(Options("single"), TextWriter.Null))
            reference = new TrainingRun(s, new LineProgress(TextWriter.Null, 1000)).Run();

        var log = new StringWriter();
        var st = InProcessCluster.Train(Options("cluster"), workers: 2, log, TimeSpan.FromMinutes(4));
        Assert.True(st.Phase == RunPhase.Completed, $"{st.Phase}: {st.Detail}\n{log}");
        Assert.Equal(6, st.CommittedSteps);
        var mine = SafetensorsFile.ReadAll(Path.Combine(_root, "cluster", "adapter", "adapter_model.safetensors"));
        var theirs = SafetensorsFile.ReadAll(Path.Combine(reference.AdapterDir, "adapter_model.safetensors"));
        Assert.Equal(theirs.Keys.Order(), mine.Keys.Order());
        foreach (var (name, t) in theirs) Assert.True(Engine.EngineWorkspace.Same(t, mine[name]), name);
        Assert.NotEmpty(TrainerCheckpoint.List(Path.Combine(_root, "cluster", "checkpoints")));
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
