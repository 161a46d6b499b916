using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// metrics.jsonl in a cluster is appended by whichever worker leads: a validation asked again after the group changed,
/// or a commit re-sent to a new lead, can log a step twice. The log says whether a validation is already there, and the
/// history read from it counts each step and validation once.
/// </summary>
[Trait("Category", "Engine")]
public sealed class MetricsLogTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static StepMetrics Step(long s, double loss) => new(s, 0, loss, loss, loss, new[] { loss }, 1e-4, 1, 10, 100, 0.1, false, null);
    private static ValidationResult Val(long s, double loss) => new(s, loss, loss, loss, new[] { loss }, 5, 5, 2);

    [Fact]
    public void A_step_or_validation_logged_twice_is_read_once_and_a_logged_validation_is_found()
    {
        var path = _dir.File("metrics.jsonl");
        Assert.False(MetricsLog.HasValidation(path, 2)); // no log yet
        using (var log = new MetricsLog(path))
        {
            log.Step(Step(0, 3.0));
            log.Step(Step(1, 2.5));
            log.Validation(Val(2, 2.0), best: true);
            log.Step(Step(1, 2.5));           // the same commit applied by a second lead
            log.Validation(Val(2, 2.0), best: true);
            log.Step(Step(2, 2.25));
        }
        Assert.True(MetricsLog.HasValidation(path, 2));
        Assert.False(MetricsLog.HasValidation(path, 1));
        var (steps, vals) = RunHistory.Read(path);
        Assert.Equal(new long[] { 0, 1, 2 }, steps.Select(s => s.Step));
        Assert.Equal(new long[] { 2 }, vals.Select(v => v.Step));
        Assert.Equal(6, File.ReadAllLines(path).Length); // reading does not rewrite the file unless asked to
    }

    public void Dispose() => _dir.Dispose();
}
