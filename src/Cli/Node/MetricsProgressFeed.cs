using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// A cluster run's progress lines, read back from the lead worker's metrics.jsonl at each poll. Each step and
/// validation is shown once, in the order they happened (the validation after N steps between step N's line and
/// step N+1's, though one poll may read both), and only what this run did: a resumed run's earlier steps and
/// validations are history, not progress.
/// </summary>
public sealed class MetricsProgressFeed(long startStep)
{
    private readonly HashSet<(bool Validation, long Step)> _shown = new();

    /// <summary>One line to show: a train step or a validation.</summary>
    public sealed record Entry(StepMetrics? Step, ValidationResult? Validation);

    /// <summary>What the log holds that was not shown yet, in order; <paramref name="steps"/> and <paramref name="validations"/> are the whole log as read now.</summary>
    public List<Entry> Next(IReadOnlyList<StepMetrics> steps, IReadOnlyList<ValidationResult> validations)
    {
        var fresh = new List<(long Done, int Order, Entry E)>();
        foreach (var m in steps)
            if (m.Step >= startStep && _shown.Add((false, m.Step))) fresh.Add((m.Step + 1, 0, new Entry(m, null)));
        // a resumed run does not validate where it starts: a validation there is the earlier attempt's
        foreach (var v in validations)
            if ((v.Step > startStep || startStep == 0) && _shown.Add((true, v.Step))) fresh.Add((v.Step, 1, new Entry(null, v)));
        return fresh.OrderBy(f => f.Done).ThenBy(f => f.Order).Select(f => f.E).ToList();
    }

    /// <summary>The console line of a validation.</summary>
    public static string Line(ValidationResult v) =>
        $"validation at step {v.Step}: loss {MetricsLog.F(v.Loss)} (text {MetricsLog.F(v.TextLoss)}, audio {MetricsLog.F(v.AudioLoss)})";
}
