using System.Text.Json;
using HiggsCluster.Messages;
using HiggsCluster.Training.Engine;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// A submitted run from validated training options: paths made absolute (every node resolves them the same way), the
/// resolved keys as the config every node rebuilds its options from, and the numbers the coordinator plans with.
/// </summary>
public static class RunSpecFactory
{
    /// <summary>
    /// Shards are the unit loaders own; more than a few thousand only costs the coordinator memory and time per
    /// generation (100,000,000 made it stop answering), so a submitted count is capped before anything is planned.
    /// </summary>
    public const int MaxShards = 4096;

    public static RunSpec From(TrainOptions o, string runId, int shardCount = 16, int startWorkers = 1)
    {
        if (shardCount is <= 0 or > MaxShards)
            throw new TrainConfigException("cluster.shards", $"must be within 1..{MaxShards} (--shards), got {shardCount}");
        var abs = o.Clone();
        abs.Manifest = abs.Manifest.Length == 0 ? "" : Path.GetFullPath(abs.Manifest);
        abs.Manifests = abs.Manifests.Select(c => c with { Path = Path.GetFullPath(c.Path), DataRoot = c.DataRoot is null ? null : Path.GetFullPath(c.DataRoot) }).ToArray();
        abs.ValidationManifest = abs.ValidationManifest is null ? null : Path.GetFullPath(abs.ValidationManifest);
        abs.DataRoot = abs.DataRoot is null ? null : Path.GetFullPath(abs.DataRoot);
        abs.TextTokenizer = Path.GetFullPath(abs.TextTokenizer);
        abs.AudioTokenizer = Path.GetFullPath(abs.AudioTokenizer);
        abs.CodeCache = abs.CodeCache is null ? null : Path.GetFullPath(abs.CodeCache);
        abs.BaseModelDir = Path.GetFullPath(abs.BaseModelDir);
        abs.OutputDir = Path.GetFullPath(abs.OutputDir);
        return new RunSpec(runId, abs.Resolved().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal),
            abs.Ranks, abs.BatchSize, abs.GradAccumulation, abs.Epochs, abs.MaxSteps, abs.SaveSteps, abs.ValSteps, (ulong)abs.Seed,
            abs.ValidationFraction, abs.ValidationManifest is not null, shardCount, startWorkers)
        {
            EarlyStoppingPatience = abs.EarlyStoppingPatience,
        };
    }

    /// <summary>
    /// The spec continues after the checkpoint in <paramref name="dir"/>, with its early-stopping bookkeeping (every
    /// worker checks the checkpoint against the run's plan before it trains).
    /// </summary>
    public static RunSpec Resumed(RunSpec spec, string dir)
    {
        TrainerState? state;
        try { state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(dir, TrainerCheckpoint.StateFile))); }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new TrainConfigException("--resume", $"{dir}: trainer state unreadable: {e.Message}");
        }
        if (state is null) throw new TrainConfigException("--resume", $"{dir} has no trainer state");
        return spec with
        {
            ResumeFrom = Path.GetFullPath(dir), StartStep = state.NextStep, ResumeBestLoss = state.BestValLoss,
            ResumeValidationsWithoutImprovement = state.ValidationsWithoutImprovement,
        };
    }

    public static TrainOptions Options(RunSpec spec) => TrainOptions.FromResolved(spec.Config);
}
