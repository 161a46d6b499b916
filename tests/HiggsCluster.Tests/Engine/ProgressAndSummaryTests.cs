using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// The lines a run prints: a skipped step says why (also when read back from metrics.jsonl by a cluster run), the
/// summary's first and last loss come from different steps, and an empty training set says which warnings emptied it.
/// </summary>
[Trait("Category", "Engine")]
public sealed class ProgressAndSummaryTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static StepMetrics Step(long s, double loss, bool skipped = false, string? why = null) =>
        new(s, 0, loss, loss, loss, new[] { loss }, 1e-4, 1, 10, 100, 0.1, skipped, why);

    [Fact]
    public void A_skipped_step_read_back_from_the_log_keeps_its_reason()
    {
        var path = _dir.File("metrics.jsonl");
        using (var log = new MetricsLog(path)) { log.Step(Step(0, 2.0)); log.Step(Step(1, double.NaN, skipped: true, why: "non-finite loss")); }
        var (steps, _) = RunHistory.Read(path);
        Assert.Equal("non-finite loss", steps[1].SkipReason);
        var w = new StringWriter();
        new LineProgress(w, every: 10).Step(steps[1], TimeSpan.Zero);
        Assert.Contains("SKIPPED (non-finite loss)", w.ToString());
        Assert.Equal("SKIPPED (reason not logged)", StepMetrics.SkipNote(null));
    }

    [Theory]
    [InlineData(1, 10.0, 10.0)]           // one step: nothing to compare it with
    [InlineData(2, 10.0, 9.0)]
    [InlineData(6, 9.0, 6.0)]             // steps 1–3 against 4–6
    [InlineData(20, 8.0, -7.0)]           // five steps at each end
    public void First_and_last_loss_average_windows_that_do_not_overlap(int steps, double first, double last)
    {
        // the loss falls by one each step from 10
        var history = Enumerable.Range(0, steps).Select(i => Step(i, 10.0 - i)).ToList();
        history.Insert(1, Step(99, double.NaN, skipped: true, why: "no scored tokens")); // a skipped step counts for neither
        var (f, l) = RunHistory.FirstAndLastLoss(history);
        Assert.Equal(first, f, 12);
        Assert.Equal(last, l, 12);
    }

    [Fact]
    public void No_usable_training_sample_names_the_warnings_that_explain_it()
    {
        var warnings = Enumerable.Range(1, 7).Select(i => $"row {i}: audio file not found").ToList();
        var message = TrainingSession.NoUsableSample(warnings);
        Assert.StartsWith("no usable training sample: row 1: audio file not found; ", message);
        Assert.Contains("row 5: audio file not found", message);
        Assert.DoesNotContain("row 6:", message);
        Assert.EndsWith("… and 2 more", message);
        Assert.Equal("no usable training sample", TrainingSession.NoUsableSample(Array.Empty<string>()));
    }

    public void Dispose() => _dir.Dispose();
}
