using System.Collections.Immutable;
using HiggsCluster.Planning;

namespace HiggsCluster.Coordinator.Planning;

/// <summary>What one committed global step consumed and under which membership.</summary>
public sealed record StepRecord(long GlobalStep, int Epoch, long Generation, int World, long[] SampleIds);

/// <summary>
/// The global sample cursor: the next global step to train and the ledger of committed steps. Steps commit strictly
/// in plan order, each once; a step abandoned by a membership change is simply planned again.
/// </summary>
public sealed record SampleCursor(long GlobalStep, ImmutableList<StepRecord> Ledger)
{
    public static SampleCursor Start { get; } = new(0, ImmutableList<StepRecord>.Empty);

    public bool Finished(SamplePlan plan) => GlobalStep >= plan.TotalSteps;

    public SampleCursor Commit(SamplePlan plan, long step, long generation, int world, long[] sampleIds)
    {
        if (step != GlobalStep)
            throw new InvalidOperationException(step < GlobalStep
                ? $"step {step} is already committed"
                : $"step {step} is out of order: the cursor is at step {GlobalStep}");
        return new SampleCursor(step + 1, Ledger.Add(new StepRecord(step, plan.EpochOf(step), generation, world, sampleIds)));
    }

    /// <summary>Back to the state after <paramref name="step"/> steps: the later commits are undone (they will be trained again).</summary>
    public SampleCursor RollBackTo(long step) => step < 0 || step > GlobalStep
        ? throw new InvalidOperationException($"cannot roll back to step {step}: the cursor is at step {GlobalStep}")
        : new SampleCursor(step, Ledger.RemoveAll(r => r.GlobalStep >= step));
}
