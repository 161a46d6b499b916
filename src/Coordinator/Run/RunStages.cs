using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// Where a run is, durably: a closed hierarchy (only the records nested here) instead of a phase and flags. A finishing
/// run wraps what it is doing on the way to its end (the final validation, the final checkpoint, or waiting to write
/// it), so "finishing while training" or "early-stopped but not finishing" cannot be written down. Mapped to the wire's
/// <see cref="RunPhase"/> for status replies.
/// </summary>
public abstract record RunStage
{
    private RunStage() { }

    public abstract RunPhase Phase { get; }

    /// <summary>Submitted: the loaders have not prepared every shard yet, so there is no plan.</summary>
    public sealed record Unplanned : RunStage { public override RunPhase Phase => RunPhase.Submitted; }
    public sealed record Training : RunStage { public override RunPhase Phase => RunPhase.Training; }
    public sealed record Checkpointing(string Tag) : RunStage { public override RunPhase Phase => RunPhase.Checkpointing; }
    public sealed record Validating : RunStage { public override RunPhase Phase => RunPhase.Validating; }
    /// <summary>
    /// No further step is trained: the run ends once <see cref="Doing"/> (a <see cref="Training"/> wait, a
    /// <see cref="Validating"/> or a <see cref="Checkpointing"/>) leads to the final checkpoint being written.
    /// </summary>
    public sealed record Finishing(RunStage Doing, bool EarlyStopped) : RunStage { public override RunPhase Phase => Doing.Phase; }
    public sealed record Ended(RunPhase Outcome, string Reason, bool EarlyStopped) : RunStage { public override RunPhase Phase => Outcome; }
}
