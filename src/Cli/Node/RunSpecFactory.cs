using System.Text.Json;
using HiggsCluster.Messages;
using HiggsCluster.Training.Engine;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// A submitted run from training options: validated here, once (a bad value is refused naming its key), paths made
/// absolute (every node resolves them the same way): the typed options every node builds its part from, the coordinator's
/// plan included. Nodes read the spec's options as they are; none parses config text again.
/// </summary>
public static class RunSpecFactory
{
    /// <summary>
    /// Shards are the unit loaders own; more than a few thousand only costs the coordinator memory and time per
    /// generation (100,000,000 made it stop answering), so a submitted count is capped before anything is planned.
    /// </summary>
    public const int MaxShards = 4096;

    /// <summary><paramref name="checkFiles"/>: also check that the inputs exist here (the command host shares the nodes' files).</summary>
    public static RunSpec From(TrainOptions o, string runId, int shardCount = 16, int startWorkers = 1, bool checkFiles = false)
    {
        if (shardCount is <= 0 or > MaxShards)
            throw new TrainConfigException("cluster.shards", $"must be within 1..{MaxShards} (--shards), got {shardCount}");
        o.Validate(checkFiles);
        static string? Abs(string? p) => string.IsNullOrEmpty(p) ? p : Path.GetFullPath(p);
        var r = o.ToRecord();
        var abs = r with
        {
            Manifest = Abs(r.Manifest)!,
            Manifests = r.Manifests.Select(c => c with { Path = Path.GetFullPath(c.Path), DataRoot = Abs(c.DataRoot) }).ToArray(),
            ValidationManifest = Abs(r.ValidationManifest), DataRoot = Abs(r.DataRoot), CodeCache = Abs(r.CodeCache),
            TextTokenizer = Abs(r.TextTokenizer)!, AudioTokenizer = Abs(r.AudioTokenizer)!, BaseModelDir = Abs(r.BaseModelDir)!,
            OutputDir = Abs(r.OutputDir)!,
        };
        return new RunSpec(runId, abs, shardCount, startWorkers);
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
            ResumeValidationsWithoutImprovement = state.ValidationsWithoutImprovement, ResumeBestStep = state.BestStep,
        };
    }

    public static TrainOptions Options(RunSpec spec) => TrainOptions.From(spec.Options);
}
