using System.Collections.Immutable;

namespace HiggsCluster.Coordinator.Planning;

/// <summary>What one committed global step consumed and under which membership.</summary>
public sealed record StepRecord(long GlobalStep, int Epoch, long Step, long Generation, int World, long[] SampleIds);

/// <summary>
/// The global sample cursor: the next (epoch, step) to train and the ledger of committed steps. Steps commit strictly
/// in plan order, each once; a step abandoned by a membership change is simply planned again.
/// </summary>
public sealed record SampleCursor(int Epoch, long Step, ImmutableList<StepRecord> Ledger)
{
    public static SampleCursor Start { get; } = new(0, 0, ImmutableList<StepRecord>.Empty);

    public long GlobalStep => Ledger.Count;

    public bool Finished(SamplePlan plan, int epochs, long maxSteps) =>
        Epoch >= epochs || (maxSteps > 0 && GlobalStep >= maxSteps) || plan.StepsPerEpoch == 0;

    public SampleCursor Commit(SamplePlan plan, int epoch, long step, long generation, int world, long[] sampleIds)
    {
        if (epoch != Epoch || step != Step)
        {
            bool done = Ledger.Any(r => r.Epoch == epoch && r.Step == step);
            throw new InvalidOperationException(done
                ? $"epoch {epoch} step {step} is already committed"
                : $"epoch {epoch} step {step} is out of order: the cursor is at epoch {Epoch} step {Step}");
        }
        var ledger = Ledger.Add(new StepRecord(Ledger.Count, epoch, step, generation, world, sampleIds));
        return step + 1 >= plan.StepsPerEpoch ? new SampleCursor(epoch + 1, 0, ledger) : new SampleCursor(epoch, step + 1, ledger);
    }
}
