using System.Collections.Concurrent;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Model;
using TorchSharp;

namespace HiggsCluster.DataLoaderNode.Building;

/// <summary>
/// The real data path behind a loader: per run, the same <see cref="RunData"/> the single-process trainer uses
/// (tokenizers, code cache, collator, manifest entries by id), so a batch built here is bit-identical to the one the
/// trainer would collate for the same ids. Samples are kept in a bounded store; the code cache makes rebuilding cheap.
/// </summary>
public sealed class SampleBatchBuilder(Func<TrainOptions, HiggsAudioConfig, RunData>? open = null, int samplesKept = 4096) : IBatchBuilder, IDisposable
{
    private sealed class Run(TrainOptions options, RunData data)
    {
        public TrainOptions Options { get; } = options;
        public RunData Data { get; } = data;
    }

    private readonly ConcurrentDictionary<string, Lazy<Run>> _runs = new(StringComparer.Ordinal);

    private Run For(RunSpec spec) => _runs.GetOrAdd(spec.RunId, _ => new Lazy<Run>(() =>
    {
        // the spec's values were validated where it was made; the files must be on this node
        var o = TrainOptions.From(spec.Options);
        o.CheckFiles();
        var cfg = HiggsAudioConfig.Load(Path.Combine(o.BaseModelDir, "config.json"));
        return new Run(o, open?.Invoke(o, cfg) ?? RunData.Open(o, cfg, capacity: samplesKept));
    })).Value;

    public ShardsPrepared Prepare(AssignShards a)
    {
        var run = For(a.Spec);
        var mine = a.ShardIds.ToHashSet();
        bool Owned(long id) => mine.Contains((int)(id % a.ShardCount));
        var problems = new List<string>();
        long[] parsed;
        List<long> usable;
        lock (run)
        {
            parsed = run.Data.ParsedTrainIds.Concat(run.Data.ParsedValidationIds).Where(Owned).ToArray();
            usable = run.Data.Usable(parsed, problems);
        }
        // manifest lines that did not parse have no id to shard by: every loader reports them, the coordinator de-duplicates
        problems.InsertRange(0, run.Data.Warnings);
        return new ShardsPrepared(a.RunId, a.Generation, a.ShardIds, parsed, usable.ToArray(), problems.ToArray());
    }

    public BatchDelivery Build(RunSpec spec, PlanMicroBatch p)
    {
        var run = For(spec);
        List<FieldBytes> fields;
        lock (run)
        {
            using var scope = torch.NewDisposeScope();
            try { fields = BatchBytes.Encode(run.Data.Store.Collate(p.SampleIds)); }
            catch (SampleException e) { throw new InvalidDataException($"step {p.Step} rank {p.Rank} micro {p.Micro}: {e.Message}", e); }
        }
        var tensors = fields.Select(f => new NamedTensor(f.Name, new TensorData(TensorDTypes.FromSafetensorsName(f.DType), f.Shape, f.Data))).ToArray();
        return new BatchDelivery(p.RunId, p.Generation, p.Epoch, p.Step, p.Rank, p.Micro, p.SampleIds, tensors);
    }

    public void Dispose()
    {
        foreach (var r in _runs.Values.Where(l => l.IsValueCreated)) r.Value.Data.Dispose();
        _runs.Clear();
    }
}
