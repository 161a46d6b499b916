using System.Collections.Immutable;
using System.Globalization;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Cluster.Legacy;

// The run machine as it was before Decide/Evolve (Handle mutating via with, replay re-implemented in Apply, events
// reconstructed by EventsOf), kept only as the reference of the differential test: the rewrite must decide the same.
/// <summary>Which events one <see cref="RunState.Handle"/> call implies (pure; the shell journals them before acting).</summary>
public static class RunJournal
{
    public static IReadOnlyList<RunEvent> EventsOf(RunState before, RunCommand cmd, RunState after, IReadOnlyList<RunEffect> effects)
    {
        var id = before.Spec.RunId;
        var events = new List<RunEvent>();
        bool rejected = effects.Any(e => e is CommandRejected);
        if (!rejected)
        {
            switch (cmd)
            {
                case CheckpointFinished c: events.Add(new RunEvents.CheckpointDone(id, c.GlobalStep, c.Path)); break;
                case ValidationFinished v: events.Add(new RunEvents.ValidationDone(id, v.GlobalStep, v.Loss)); break;
                case CheckpointRequested: events.Add(new RunEvents.CheckpointRequested(id, after.PendingCheckpointTag)); break;
                case ValidationRequested: events.Add(new RunEvents.ValidationRequested(id)); break;
            }
        }
        foreach (var fx in effects)
        {
            switch (fx)
            {
                case RunPlannedEffect p: events.Add(new RunEvents.Planned(id, p.TrainIds, p.ValidationIds, p.Problems)); break;
                case StepCommittedEffect c: events.Add(new RunEvents.StepCommitted(id, c.Record, c.Totals)); break;
                case CheckpointEffect c: events.Add(new RunEvents.CheckpointStarted(id, c.GlobalStep, c.Tag, c.Final)); break;
                case ValidateEffect v:
                    events.Add(new RunEvents.ValidationStarted(id, v.GlobalStep, after.Plan is { } plan && v.GlobalStep >= plan.TotalSteps));
                    break;
                case RunEndedEffect e: events.Add(new RunEvents.Ended(id, e.Phase, e.Reason)); break;
                case RestoreEffect { RollBack: true } r:
                    events.Add(new RunEvents.RolledBack(id, r.GlobalStep, r.Path, after.BestValidationLoss, after.ValidationsWithoutImprovement));
                    break;
            }
        }
        return events;
    }
}
