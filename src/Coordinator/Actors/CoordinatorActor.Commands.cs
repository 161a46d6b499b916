using Akka.Actor;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Actors;

/// <summary>Read-only queries of the command host (run list, roster): commands that never change run state, so never journalled.</summary>
public sealed partial class CoordinatorActor
{
    private void ReceiveCommandQueries()
    {
        Command<ListRuns>(q => Sender.Tell(new RunList(_runs
            .Where(r => q.RunId is null || r.Key == q.RunId)
            .OrderBy(r => r.Key, StringComparer.Ordinal)
            .Select(r => new RunSummary(r.Key, r.Value.Phase, r.Value.Epoch, r.Value.Cursor.GlobalStep, r.Value.Plan?.TotalSteps ?? 0,
                r.Value.Detail, r.Value.Spec.Config.GetValueOrDefault("train.output_dir", ""), _lastStats.GetValueOrDefault(r.Key, Array.Empty<double>())))
            .ToArray())));
        Command<GetRoster>(_ => Sender.Tell(new Roster(_loaders.LoadersUp.ToArray(), _roster.Entries(), _roster.Generation)));
    }
}
