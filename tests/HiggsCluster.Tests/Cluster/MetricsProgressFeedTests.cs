using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The in-process cluster's progress, read back from metrics.jsonl: a validation shows between the steps it came
/// between, each line once, and a resumed run shows only what it ran.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class MetricsProgressFeedTests
{
    private static StepMetrics Step(long s) => new(s, 0, 1.0, 0.5, 0.5, new[] { 1.0 }, 1e-4, 1, 10, 100, 0.1, false, null);
    private static ValidationResult Val(long s) => new(s, 2.0, 1.0, 1.0, new[] { 2.0 }, 5, 5, 2);

    private static List<string> Lines(IEnumerable<MetricsProgressFeed.Entry> entries) =>
        entries.Select(e => e.Validation is { } v ? $"val {v.Step}" : $"step {e.Step!.Step + 1}").ToList();

    [Fact]
    public void A_validation_read_in_the_same_poll_as_later_steps_is_shown_between_them()
    {
        var feed = new MetricsProgressFeed(0);
        // one poll reads the baseline, steps 1–3 and the validation after step 2
        var first = feed.Next(new[] { Step(0), Step(1), Step(2) }, new[] { Val(0), Val(2) });
        Assert.Equal(new[] { "val 0", "step 1", "step 2", "val 2", "step 3" }, Lines(first));
        // the next poll reads the whole log again: only what is new
        var second = feed.Next(new[] { Step(0), Step(1), Step(2), Step(3), Step(4) }, new[] { Val(0), Val(2), Val(4) });
        Assert.Equal(new[] { "step 4", "val 4", "step 5" }, Lines(second));
        Assert.Empty(feed.Next(new[] { Step(0), Step(1), Step(2), Step(3), Step(4) }, new[] { Val(0), Val(2), Val(4) }));
    }

    [Fact]
    public void A_resumed_run_shows_only_the_steps_and_validations_it_ran()
    {
        var feed = new MetricsProgressFeed(4);
        // the log still holds the earlier attempt: steps 1–6 and the validations at 0, 2 and 4
        var shown = feed.Next(Enumerable.Range(0, 6).Select(i => Step(i)).ToList(), new[] { Val(0), Val(2), Val(4), Val(6) });
        Assert.Equal(new[] { "step 5", "step 6", "val 6" }, Lines(shown));
    }

    [Fact]
    public void A_step_logged_twice_is_shown_once()
    {
        var feed = new MetricsProgressFeed(0);
        Assert.Equal(new[] { "step 1" }, Lines(feed.Next(new[] { Step(0) }, Array.Empty<ValidationResult>())));
        // a commit re-sent to a new lead logs step 0 again; RunHistory keeps its last record
        Assert.Equal(new[] { "step 2" }, Lines(feed.Next(new[] { Step(1), Step(0) }, Array.Empty<ValidationResult>())));
    }
}
