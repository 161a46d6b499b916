using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// Stand-ins for the data path and the engine in protocol tests: sample ids 0..count-1, a batch that carries its ids,
/// and a 4-parameter linear "model" whose gradient depends on the ids, so a lost, duplicated or mis-routed sample
/// changes the result.
/// </summary>
internal static class ToyCluster
{
    public static RunSpec Spec(string id, int ranks = 2, int micro = 1, int accum = 2, double epochs = 1, int shards = 3,
        int startWorkers = 1, int save = 0, int val = 0, long maxSteps = 0, ulong seed = 11, double valFraction = 0, int patience = 0) =>
        new(id, new HiggsCluster.Planning.RunOptions
        {
            Ranks = ranks, BatchSize = micro, GradAccumulation = accum, Epochs = epochs, MaxSteps = maxSteps, SaveSteps = save, ValSteps = val,
            Seed = (long)seed, ValidationFraction = valFraction, EarlyStoppingPatience = patience,
        }, shards, startWorkers);

    public sealed class IdBatches(int count, params long[] unusable) : IBatchBuilder
    {
        public int Prepares;
        public int Builds;

        public ShardsPrepared Prepare(AssignShards a)
        {
            Interlocked.Increment(ref Prepares);
            var ids = Enumerable.Range(0, count).Select(i => (long)i).Where(i => a.ShardIds.Contains((int)(i % a.ShardCount))).ToArray();
            return new ShardsPrepared(a.RunId, a.Generation, a.ShardIds, ids, ids.Except(unusable).ToArray(),
                ids.Intersect(unusable).Select(i => $"entry {i}: unusable").ToArray());
        }

        public BatchDelivery Build(RunSpec spec, PlanMicroBatch p)
        {
            Interlocked.Increment(ref Builds);
            return new(p.RunId, p.Generation, p.Epoch, p.Step, p.Rank, p.Micro, p.SampleIds,
                new[] { new NamedTensor("sample_ids", TensorData.FromLongs(p.SampleIds, p.SampleIds.Length)) });
        }
    }

    public sealed class ToyRunner : IStepRunner
    {
        public readonly float[] Params = { 1, 2, 3, 4 };
        private readonly float[] _grad = new float[4];
        private double _samples;
        public readonly List<long> Seen = new();
        public int Checkpoints;
        public int FinalCheckpoints;
        public int MicroStepMillis;
        public volatile int Steps;
        public RunPlanned? Planned;

        public void BeginRun(RunPlanned run) => Planned = run;

        public double MicroStep(BatchDelivery batch, int world)
        {
            var ids = batch.Tensors.Single(t => t.Name == "sample_ids").Tensor.AsLongs().ToArray();
            lock (Seen) Seen.AddRange(ids);
            if (MicroStepMillis > 0) Thread.Sleep(MicroStepMillis);
            foreach (var id in ids)
                for (int k = 0; k < 4; k++) _grad[k] += (id + 1) * (k + 1) * 0.01f;
            _samples += ids.Length;
            return ids.Length;
        }

        /// <summary>
        /// Plays a runner on CUDA: a backend that takes device memory gets a pinned pointer to the gradients instead of
        /// host floats (the in-memory NCCL stand-in sums through it, as NCCL sums through a device pointer).
        /// </summary>
        public bool FakeCuda { get; init; }
        public int DeviceBuckets;
        private System.Runtime.InteropServices.GCHandle _pinned;

        public GradientBucketView GradientBucket(bool deviceMemory)
        {
            if (!(deviceMemory && FakeCuda)) return new(_grad, IntPtr.Zero, _grad.Length);
            // pinned for the runner's lifetime (a test's): the pointer must stay valid while a reduce may run
            if (!_pinned.IsAllocated) _pinned = System.Runtime.InteropServices.GCHandle.Alloc(_grad, System.Runtime.InteropServices.GCHandleType.Pinned);
            Interlocked.Increment(ref DeviceBuckets);
            return new(Memory<float>.Empty, _pinned.AddrOfPinnedObject(), _grad.Length);
        }
        public double[] StepStatistics() => new[] { _samples, _samples };

        public void OptimizerStep(long globalStep, double[] totals, bool lead)
        {
            for (int k = 0; k < 4; k++) { Params[k] -= 0.1f * _grad[k] / (float)totals[0]; _grad[k] = 0; }
            _samples = 0;
            Steps++;
        }

        public ulong LoraChecksum() => GpuWorker.AllReduce.LoraChecksum.Of(Params);
        public void DiscardGradients() { Array.Clear(_grad); _samples = 0; }

        /// <summary>"Checkpoint files" of every toy runner in the test process, by path (they outlive a cluster, as files do).</summary>
        public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, float[]> Saved = new();
        public readonly List<(string? Path, long Step)> Restored = new();

        public void RestoreCheckpoint(string? dir, long step, bool cutMetricsLog)
        {
            var p = dir is null ? new float[] { 1, 2, 3, 4 }
                : Saved.TryGetValue(dir, out var saved) ? saved : throw new InvalidDataException($"no toy checkpoint at {dir}");
            p.CopyTo(Params, 0);
            DiscardGradients();
            lock (Restored) Restored.Add((dir, step));
        }

        public string SaveCheckpoint(string runId, long globalStep, string tag, bool final, EarlyStoppingCounts? counts = null)
        {
            Interlocked.Increment(ref Checkpoints);
            if (final) Interlocked.Increment(ref FinalCheckpoints);
            Saved[$"mem://{runId}/{tag}"] = (float[])Params.Clone();
            return $"mem://{runId}/{tag}";
        }

        public double Validate(string runId, long globalStep, EarlyStoppingCounts? counts = null) => 0;

        public NamedTensor[] ExportState() => new[] { new NamedTensor("params", TensorData.FromFloats(Params, Params.Length)) };

        public void ImportState(NamedTensor[] state) =>
            state.Single(t => t.Name == "params").Tensor.AsFloats().CopyTo(Params);
    }
}
