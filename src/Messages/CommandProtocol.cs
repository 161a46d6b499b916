namespace HiggsCluster.Messages;

/// <summary>Command host → coordinator: every run it knows (or only <see cref="RunId"/> when given).</summary>
public sealed record ListRuns(string? RunId = null) : IControlMessage;

/// <summary>
/// One run as the command host shows it. <see cref="OutputDir"/> is the run's train.output_dir (where the lead worker
/// writes metrics.jsonl, checkpoints and the adapter); <see cref="LastStats"/> as in <see cref="RunStatus"/>.
/// </summary>
public sealed record RunSummary(string RunId, RunPhase Phase, int Epoch, long CommittedSteps, long TotalSteps, string Detail, string OutputDir, double[] LastStats);

public sealed record RunList(RunSummary[] Runs) : IControlMessage;

/// <summary>Command host → coordinator: the loaders and workers the coordinator plans with.</summary>
public sealed record GetRoster : IControlMessage
{
    public static readonly GetRoster Instance = new();
}

/// <summary><see cref="Rank"/> is the worker's place in the current all-reduce group (<see cref="Roster.Generation"/>).</summary>
public sealed record WorkerEntry(string WorkerId, string Path, string RingHost, int RingPort, bool HasCuda, int Rank);

public sealed record Roster(string[] Loaders, WorkerEntry[] Workers, long Generation) : IControlMessage;
