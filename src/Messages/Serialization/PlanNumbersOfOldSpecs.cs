using HiggsCluster.Planning;

namespace HiggsCluster.Messages.Serialization;

/// <summary>
/// Specs written before <see cref="RunSpec"/> read its plan numbers from its options held them as fields of their own
/// (old journal rows, the old Hyperion layout). Those fields are what that coordinator planned with, so they are put
/// into the options when such a spec is read: the run replays to the plan it was trained on.
/// </summary>
public static class PlanNumbersOfOldSpecs
{
    public static RunOptions Fold(RunOptions o, int ranks, int microBatchSize, int gradAccumulation, double epochs, long maxSteps,
        int saveSteps, int valSteps, ulong seed, double validationFraction, int earlyStoppingPatience) => o with
    {
        Ranks = ranks, BatchSize = microBatchSize, GradAccumulation = gradAccumulation, Epochs = epochs, MaxSteps = maxSteps,
        SaveSteps = saveSteps, ValSteps = valSteps, Seed = unchecked((long)seed), ValidationFraction = validationFraction,
        EarlyStoppingPatience = earlyStoppingPatience,
    };
}
