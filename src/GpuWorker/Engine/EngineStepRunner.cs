using System.Diagnostics;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Planning;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.GpuWorker.Engine;

/// <summary>
/// The training engine behind a worker: the model, LoRA and AdamW of the single-process trainer, built the same way
/// from the run's resolved options, driven one micro-batch at a time. Each micro-batch is computed as plan rank r's
/// micro m (dropout seeded by step, rank, micro), so the result does not depend on which worker computes it. The lead
/// rank writes metrics.jsonl, checkpoints and the final adapter into the run's output folder.
/// </summary>
public sealed class EngineStepRunner(Func<TrainOptions, HiggsAudioConfig, RunData>? openValidationData = null) : IStepRunner, IDisposable
{
    private RunPlanned? _run;
    private TrainOptions _o = null!;
    private HiggsAudioModel _model = null!;
    private LoraAdapter _adapter = null!;
    private TrainingEngine _engine = null!;
    private SamplePlan _plan = null!;
    private float[] _bucket = Array.Empty<float>();
    private GradientResult _acc = GradientResult.Empty(0);
    private RunData? _validationData;
    private MetricsLog? _metrics;
    private readonly Stopwatch _stepClock = new();
    private double? _bestLoss;
    private long? _bestStep;

    /// <summary>Called with the step count of a checkpoint once its files are written, before they are published (fault drills).</summary>
    public Action<long>? BeforeCheckpointPublish { get; init; }

    public void BeginRun(RunPlanned run)
    {
        if (_run?.Spec.RunId == run.Spec.RunId) return;
        DisposeRun();
        var o = TrainOptions.FromResolved(run.Spec.Config);
        o.Validate();
        var device = o.Device == "cpu" ? CPU : new Device(o.Device);
        torch.manual_seed(o.Seed);
        _model = Checkpoint.LoadModel(o.BaseCheckpoint, ScalarType.Float32, device);
        _adapter = LoraAdapter.Attach(_model, o.ToLoraConfig(), ScalarType.Float32, new Generator((ulong)o.Seed));
        _plan = o.Plan(run.TrainIds);
        _engine = TrainingEngine.Create(_model, _adapter, o, _plan.TotalSteps);
        _bucket = new float[_engine.FlatSize];
        _o = o;
        _run = run;
        ResetStep();
    }

    private void ResetStep()
    {
        _engine.BeginStep();
        _acc = GradientResult.Empty(_model.Config.AudioNumCodebooks);
    }

    public double MicroStep(BatchDelivery batch, int world)
    {
        if (_run is null) throw new InvalidOperationException($"run {batch.RunId} was not planned on this worker");
        if (!_stepClock.IsRunning) _stepClock.Restart();
        var (rank, micro) = Locate(batch.Step, batch.Rank, world, batch.Micro);
        using var scope = NewDisposeScope();
        var fields = batch.Tensors.Select(t => new FieldBytes(t.Name, TensorDTypes.ToSafetensorsName(t.Tensor.DType), t.Tensor.Shape, t.Tensor.Data));
        var b = BatchBytes.Decode(fields, _model.Device);
        var r = _engine.AccumulateMicroBatch(b, batch.Step, rank, micro);
        _acc = _acc.Add(r);
        return r.Loss;
    }

    /// <summary>Which plan rank's micro-batch the worker's micro index is (a worker runs its ranks in order).</summary>
    private (int Rank, int Micro) Locate(long step, int worker, int world, int index)
    {
        foreach (var r in _plan.RanksOfWorker(worker, world))
        {
            int n = _plan.MicroBatches(step, r).Count;
            if (index < n) return (r, index);
            index -= n;
        }
        throw new InvalidDataException($"step {step}: worker {worker} of {world} has no micro-batch {index} in the plan");
    }

    public GradientBucketView GradientBucket()
    {
        using var flat = _engine.FlatGradients();
        flat.data<float>().CopyTo(_bucket);
        return new GradientBucketView(_bucket, IntPtr.Zero, _bucket.Length);
    }

    public double[] StepStatistics() => _acc.ToVector();

    public void OptimizerStep(long globalStep, double[] totals, bool lead)
    {
        var g = GradientResult.FromVector(totals);
        ApplyResult a;
        using (var scope = NewDisposeScope())
        {
            _engine.SetFlatGradients(torch.tensor(_bucket));
            a = _engine.ApplyGradients(g, globalStep);
        }
        double secs = _stepClock.Elapsed.TotalSeconds;
        _stepClock.Reset();
        if (lead)
        {
            Metrics().Step(new StepMetrics(globalStep, _plan.EpochOf(globalStep), g.Loss, g.TextLoss, g.AudioLoss, g.CodebookLosses, a.Lr,
                a.GradNorm, g.Positions, g.Positions / Math.Max(1e-9, secs), secs, !a.Applied, a.SkipReason));
        }
        ResetStep();
    }

    private MetricsLog Metrics()
    {
        if (_metrics is not null) return _metrics;
        Directory.CreateDirectory(_o.OutputDir);
        var path = Path.Combine(_o.OutputDir, "metrics.jsonl");
        if (File.Exists(path)) File.Delete(path);
        return _metrics = new MetricsLog(path);
    }

    public ulong LoraChecksum()
    {
        using var p = _engine.FlatParameters();
        return AllReduce.LoraChecksum.Of(p.data<float>().ToArray());
    }

    public void DiscardGradients()
    {
        _stepClock.Reset();
        ResetStep();
    }

    public string SaveCheckpoint(string runId, long globalStep, string tag, bool final)
    {
        var root = Path.Combine(_o.OutputDir, "checkpoints");
        var state = new TrainerState
        {
            NextStep = globalStep, Epoch = _plan.EpochOf(Math.Max(0, globalStep - 1)), TotalSteps = _plan.TotalSteps,
            ConsumedSamples = Enumerable.Range(0, (int)globalStep).SelectMany(s => _plan.StepSamples(s)).ToList(),
            NonFiniteInARow = _engine.NonFiniteInARow, BestValLoss = _bestLoss, BestStep = _bestStep,
            RngState = TrainerCheckpoint.CaptureRng(), Config = _o.Resolved(),
        };
        var dir = TrainerCheckpoint.SaveAtomic(root, _adapter, _engine.Optimizer, state,
            BeforeCheckpointPublish is { } hook ? _ => hook(globalStep) : null);
        TrainerCheckpoint.Prune(root, _o.KeepLast, _bestStep);
        if (final) _adapter.Save(Path.Combine(_o.OutputDir, "adapter"));
        return dir;
    }

    public double Validate(string runId, long globalStep)
    {
        if (_run is null || _run.ValidationIds.Length == 0) return double.NaN;
        _validationData ??= openValidationData?.Invoke(_o, _model.Config) ?? RunData.Open(_o, _model.Config);
        var v = Evaluator.Run(_model, _validationData.Store, _run.ValidationIds, _o.BatchSize, _engine.LossOptions, globalStep);
        bool best = _bestLoss is null || v.Loss < _bestLoss;
        if (best) { _bestLoss = v.Loss; _bestStep = globalStep; }
        Metrics().Validation(v, best);
        return v.Loss;
    }

    private void DisposeRun()
    {
        _metrics?.Dispose(); _metrics = null;
        _validationData?.Dispose(); _validationData = null;
        _model?.Dispose();
        _run = null;
        _bestLoss = null; _bestStep = null;
    }

    public void Dispose() => DisposeRun();
}
