using HiggsCluster.Training;
using System.Diagnostics;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Planning;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.GpuWorker.Engine;

/// <summary>
/// The training engine behind a worker: the model, LoRA and AdamW of the single-process trainer, built the same way
/// from the run's resolved options, driven one micro-batch at a time. Each micro-batch is computed as plan rank r's
/// micro m (dropout seeded by step, rank, micro), so the result does not depend on which worker computes it. The lead
/// rank writes metrics.jsonl, checkpoints and the final adapter into the run's output folder. Best, patience and the
/// trainer state are kept by <see cref="TrainerBook"/>, as in the engine loop.
/// </summary>
/// <param name="bases">The process's host copy of the base (in-process workers): the base is read from disk once per process.</param>
public sealed class EngineStepRunner(Func<TrainOptions, HiggsAudioConfig, RunData>? openValidationData = null, BaseModels? bases = null) : IStepRunner, IDisposable
{
    /// <summary>
    /// Dropout draws from torch's process-wide generator, seeded per micro-batch: several workers in one process (the
    /// in-process mode) must not interleave seeding and drawing.
    /// </summary>
    private static readonly object RngLock = new();

    private RunPlanned? _run;
    private TrainOptions _o = null!;
    private HiggsAudioModel _model = null!;
    private LoraAdapter _adapter = null!;
    private TrainingEngine _engine = null!;
    private SamplePlan _plan = null!;
    private float[] _bucket = Array.Empty<float>();
    // the step's flat gradients on the CUDA device when the backend reduces device memory (NCCL); null on the host path
    private Tensor? _deviceBucket;
    private GradientResult _acc = GradientResult.Empty(0);
    private RunData? _validationData;
    private Training.Generation.RunSamples? _samples;
    private bool _samplesPlanned;
    private MetricsLog? _metrics;
    private TensorBoardWriter? _tensorBoard;
    // the step whose first record, if this worker writes it, cuts the run's metrics log back (later records are of undone
    // or earlier attempts' steps); null: append only
    private long? _metricsCutAt;
    private readonly Stopwatch _stepClock = new();
    private TrainerBook _book = null!;
    // a worker taking several plan ranks accumulates each alone and adds them in rank order, as the ring adds workers'
    private int? _accRank;
    private Tensor? _rankSum;

    /// <summary>Called with the step count of a checkpoint once its files are written, before they are published (fault drills).</summary>
    public Action<long>? BeforeCheckpointPublish { get; init; }

    public void BeginRun(RunPlanned run)
    {
        if (_run?.Spec.RunId == run.Spec.RunId) return;
        DisposeRun();
        // the spec's values were validated where it was made; the files must be on this node
        var o = TrainOptions.From(run.Spec.Options);
        o.CheckFiles();
        _model = RunModel.LoadBase(o, bases);
        _adapter = RunModel.Attach(_model, o);
        _plan = o.Plan(run.TrainIds);
        _engine = TrainingEngine.Create(_model, _adapter, o, _plan.TotalSteps);
        _book = new TrainerBook(o, _plan);
        _bucket = new float[_engine.FlatSize];
        _o = o;
        if (run.Spec.ResumeFrom is { } dir) Resume(dir, run.Spec.StartStep);
        _run = run;
        _metricsCutAt = run.Spec.StartStep;
        ResetStep();
    }

    /// <summary>Adapter, AdamW state and bookkeeping from a checkpoint, after checking it belongs to this run's plan.</summary>
    private void Resume(string dir, long start)
    {
        var st = TrainerCheckpoint.ReadState(dir);
        _book.Restore(st, dir, start);
        TrainerCheckpoint.LoadTensors(dir, _adapter, _engine.Optimizer);
        _engine.NonFiniteInARow = st.NonFiniteInARow;
    }

    private void ResetStep()
    {
        _deviceBucket?.Dispose();
        _deviceBucket = null;
        _rankSum?.Dispose();
        _rankSum = null;
        _accRank = null;
        _engine.BeginStep();
        _acc = GradientResult.Empty(_model.Config.AudioNumCodebooks);
    }

    public double MicroStep(BatchDelivery batch, int world)
    {
        if (_run is null) throw new InvalidOperationException($"run {batch.RunId} was not planned on this worker");
        if (!_stepClock.IsRunning) _stepClock.Restart();
        var (rank, micro) = Locate(batch.Step, batch.Rank, world, batch.Micro);
        if (_accRank is { } previous && previous != rank) SetRankAside();
        _accRank = rank;
        using var scope = NewDisposeScope();
        var fields = batch.Tensors.Select(t => new FieldBytes(t.Name, TensorDTypes.ToSafetensorsName(t.Tensor.DType), t.Tensor.Shape, t.Tensor.Data));
        var b = BatchBytes.Decode(fields, _model.Device);
        GradientResult r;
        lock (RngLock) r = _engine.AccumulateMicroBatch(b, batch.Step, rank, micro);
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

    /// <summary>The gradients of the ranks done so far go into a sum; the next rank accumulates from zero.</summary>
    private void SetRankAside()
    {
        using var scope = NewDisposeScope();
        var flat = _engine.FlatGradients();
        if (_rankSum is null) _rankSum = flat.DetachFromDisposeScope();
        else _rankSum.PlusInPlace(flat);
        _engine.Optimizer.ZeroGrad();
    }

    public GradientBucketView GradientBucket(bool deviceMemory)
    {
        _deviceBucket?.Dispose();
        _deviceBucket = null;
        if (deviceMemory && _model.Device.type == DeviceType.CUDA)
        {
            // a fresh contiguous float32 tensor on the device: the all-reduce sums it in place through its pointer, on
            // the default stream after the backward kernels; kept alive until OptimizerStep reads it back
            var flat = _engine.FlatGradients(onParameterDevice: true);
            if (_rankSum is not null) { using var aside = _rankSum.to(flat.device); flat.PlusInPlace(aside); }
            _deviceBucket = flat;
            return new GradientBucketView(Memory<float>.Empty, NativeTensor.DataPointer(flat), flat.numel());
        }
        using var host = _engine.FlatGradients();
        if (_rankSum is not null) host.PlusInPlace(_rankSum);
        host.data<float>().CopyTo(_bucket);
        return new GradientBucketView(_bucket, IntPtr.Zero, _bucket.Length);
    }

    public double[] StepStatistics() => _acc.ToVector();

    public void OptimizerStep(long globalStep, double[] totals, bool lead)
    {
        var g = GradientResult.FromVector(totals);
        ApplyResult a;
        using (var scope = NewDisposeScope())
        {
            _engine.SetFlatGradients(_deviceBucket ?? torch.tensor(_bucket));
            a = _engine.ApplyGradients(g, globalStep);
        }
        _book.Advance(globalStep);
        double secs = _stepClock.Elapsed.TotalSeconds;
        _stepClock.Reset();
        if (lead)
        {
            var m = StepRecords.Of(globalStep, _plan.EpochOf(globalStep), g, a, secs);
            Metrics(globalStep).Step(m);
            StepRecords.Write(TensorBoard(), m);
        }
        ResetStep();
    }

    /// <summary>
    /// The run's metrics log, opened by whichever worker leads when it first writes. Only the record of the run's first
    /// step (or of the step it rolled back to) cuts the log back to that step: what lies beyond is from an earlier
    /// attempt. A worker that becomes the lead mid-run (its peer died) or installed a hand-over mid-run appends to the history.
    /// </summary>
    private MetricsLog Metrics(long atStep)
    {
        if (_metrics is not null) return _metrics;
        Directory.CreateDirectory(_o.OutputDir);
        var path = Path.Combine(_o.OutputDir, "metrics.jsonl");
        // at step 0 nothing before belongs to this run (a fresh start takes its baseline again)
        if (_metricsCutAt == atStep)
        {
            if (atStep == 0) File.Delete(path);
            else RunHistory.Read(path, atStep, truncate: true);
        }
        _metricsCutAt = null;
        return _metrics = new MetricsLog(path);
    }

    private TensorBoardWriter? TensorBoard() =>
        _o.TensorBoard ? _tensorBoard ??= new TensorBoardWriter(Path.Combine(_o.OutputDir, "tensorboard")) : null;

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

    public string SaveCheckpoint(string runId, long globalStep, string tag, bool final, EarlyStoppingCounts? counts = null)
    {
        if (counts is { } c) _book.Adopt(c.BestLoss, c.ValidationsWithoutImprovement, c.BestStep);
        var root = Path.Combine(_o.OutputDir, "checkpoints");
        // the coordinator's commit is what counts as done: a checkpoint is of the step it names
        _book.Committed(globalStep);
        var dir = TrainerCheckpoint.SaveAtomic(root, _adapter, _engine.Optimizer, _book.State(_engine.NonFiniteInARow),
            BeforeCheckpointPublish is { } hook ? _ => hook(globalStep) : null);
        TrainerCheckpoint.Prune(root, _o.KeepLast, _book.BestStep);
        if (final) _adapter.Save(Path.Combine(_o.OutputDir, "adapter"));
        return dir;
    }

    public double Validate(string runId, long globalStep, EarlyStoppingCounts? counts = null)
    {
        if (_run is null || _run.ValidationIds.Length == 0) return double.NaN;
        if (counts is { } c) _book.Adopt(c.BestLoss, c.ValidationsWithoutImprovement, c.BestStep);
        _validationData ??= openValidationData?.Invoke(_o, _model.Config) ?? RunData.Open(_o, _model.Config);
        var v = Evaluator.Run(_model, _validationData.Store, _run.ValidationIds, _o.BatchSize, _engine.LossOptions, globalStep);
        bool best = _book.Validated(globalStep, v.Loss);
        var log = Metrics(globalStep);
        if (MetricsLog.HasValidation(log.Path, globalStep)) return v.Loss; // asked again: logged once
        log.Validation(v, best);
        StepRecords.Write(TensorBoard(), v);
        if (!_samplesPlanned) { _samples = Training.Generation.RunSamples.For(_o, _model, _validationData.Store, _run.ValidationIds); _samplesPlanned = true; }
        _samples?.Write(globalStep, TensorBoard(), w => Console.Error.WriteLine("higgs worker: warning: " + w));
        // the best adapter so far is kept as a checkpoint (pruning spares it), as the single-process trainer does
        if (best && globalStep > 0) SaveCheckpoint(runId, globalStep, "best", final: false);
        return v.Loss;
    }

    public void RestoreCheckpoint(string? dir, long step, bool cutMetricsLog)
    {
        var run = _run ?? throw new InvalidOperationException("no run is loaded on this worker: the checkpoint has nothing to go into");
        if (dir is null)
        {
            if (step != 0 || run.Spec.ResumeFrom is not null) throw new InvalidDataException($"the run starts at step {run.Spec.StartStep} from {run.Spec.ResumeFrom}, not from its initial adapter");
            DisposeRun(); // loaded again from the base checkpoint with the run's seed: the same initial adapter
            BeginRun(run);
        }
        else
        {
            Resume(dir, step);
            _metrics?.Dispose(); _metrics = null;
        }
        _metricsCutAt = cutMetricsLog ? step : null;
        ResetStep();
    }

    /// <summary>The hand-over to a peer: the adapter and AdamW tensors, and the trainer state in the checkpoints' schema.</summary>
    public NamedTensor[] ExportState()
    {
        if (_run is null) throw new InvalidOperationException("no run is loaded on this worker");
        using var scope = NewDisposeScope();
        var list = new List<NamedTensor>();
        foreach (var (name, p) in _engine.Optimizer.Parameters) list.Add(Named("lora." + name, p.detach().cpu().contiguous()));
        foreach (var kv in _engine.Optimizer.StateTensors()) list.Add(Named("adamw." + kv.Key, kv.Value));
        TrainerState st;
        lock (RngLock) st = _book.State(_engine.NonFiniteInARow);
        var json = TrainerBook.Serialize(st);
        list.Add(new(StateTensor, new TensorData(TensorDType.UInt8, new long[] { json.Length }, json)));
        return list.ToArray();
    }

    /// <summary>The name the trainer state travels under in a hand-over (the bytes of trainer_state.json).</summary>
    public const string StateTensor = "trainer_state.json";

    public void ImportState(NamedTensor[] state)
    {
        if (_run is null) throw new InvalidOperationException("no run is loaded on this worker: the state has nothing to go into");
        const string source = "handed-over state";
        var byName = state.ToDictionary(t => t.Name, StringComparer.Ordinal);
        TensorData Need(string name) => byName.TryGetValue(name, out var t) ? t.Tensor
            : throw new InvalidDataException($"{source} lacks '{name}'");
        var st = TrainerBook.Deserialize(Need(StateTensor).Data, source);
        using var scope = NewDisposeScope();
        var lora = _engine.Optimizer.Parameters.Select(np => (np.Name, np.Param, T: ToTensor(Need("lora." + np.Name), "lora." + np.Name))).ToList();
        foreach (var (name, p, t) in lora)
            if (!t.shape.SequenceEqual(p.shape)) throw new InvalidDataException($"{source}: 'lora.{name}' has shape [{string.Join(',', t.shape)}], the adapter [{string.Join(',', p.shape)}]");
        // checked against the plan before anything is copied in: a refused hand-over leaves the worker as it was
        lock (RngLock)
        {
            _book.Restore(st, source);
            TrainerCheckpoint.RestoreRng(st.RngState);
        }
        using (no_grad())
            foreach (var (_, p, t) in lora) p.copy_(t);
        var adamw = byName.Where(kv => kv.Key.StartsWith("adamw.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["adamw.".Length..], kv => ToTensor(kv.Value.Tensor, kv.Key), StringComparer.Ordinal);
        _engine.Optimizer.LoadState(source, adamw);
        _engine.NonFiniteInARow = st.NonFiniteInARow;
        _metricsCutAt = null;
        ResetStep();
    }

    private static NamedTensor Named(string name, Tensor t) =>
        new(name, new TensorData(TensorDTypes.FromSafetensorsName(SafetensorsFile.FromScalarType(t.dtype)), t.shape, t.bytes.ToArray()));

    private static Tensor ToTensor(TensorData d, string name)
    {
        d.Validate(name);
        var t = empty(d.Shape, SafetensorsFile.ToScalarType(TensorDTypes.ToSafetensorsName(d.DType)));
        if (d.Data.Length > 0) t.bytes = d.Data;
        return t;
    }

    private void DisposeRun()
    {
        _metrics?.Dispose(); _metrics = null;
        _tensorBoard?.Dispose(); _tensorBoard = null;
        _metricsCutAt = null;
        _validationData?.Dispose(); _validationData = null;
        _samples?.Dispose(); _samples = null; _samplesPlanned = false;
        _model?.Dispose();
        _run = null;
    }

    public void Dispose() => DisposeRun();
}
