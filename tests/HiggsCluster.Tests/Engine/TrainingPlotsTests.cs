using System.Buffers.Binary;
using System.Globalization;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Tests.Audio;
using ScottPlot.Plottables;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// plots/*.png are drawn by ScottPlot from the run's history: titled axes, whole-number steps, a legend, the raw
/// loss under its exponential moving average; the engine loop and `run plot` write the same files.
/// </summary>
[Trait("Category", "Engine")]
public sealed class TrainingPlotsTests : IDisposable
{
    private readonly TempDir _dir = new();

    // a noisy loss between 3.308 and 4.719 (the numbers the hand-drawn axes printed as tick labels)
    private static readonly double[] Losses = { 4.719, 4.2, 4.5, 3.9, 4.1, 3.6, 3.8, 3.308 };

    private static List<StepMetrics> History() => Losses.Select((l, i) =>
        new StepMetrics(i, 0, l, l * 0.3, l * 0.7, new[] { l, l + 1, l + 2 }, 1e-4, 1, 10, 100, 0.1, Skipped: i == 3, i == 3 ? "non-finite loss" : null)).ToList();

    private static List<ValidationResult> Validations() => new()
    {
        new(0, 4.8, 1.4, 3.4, new[] { 4.8 }, 5, 5, 2), new(4, 4.0, 1.2, 2.8, new[] { 4.0 }, 5, 5, 2), new(8, 3.5, 1.0, 2.5, new[] { 3.5 }, 5, 5, 2),
    };

    [Fact]
    public void The_loss_plot_has_titled_axes_a_legend_and_whole_step_ticks()
    {
        var plot = TrainingPlots.Loss(History());
        Assert.Equal("step", plot.Axes.Bottom.Label.Text);
        Assert.Equal("loss", plot.Axes.Left.Label.Text);
        Assert.Equal("training loss", plot.Axes.Title.Label.Text);
        var lines = plot.GetPlottables().OfType<Scatter>().ToList();
        Assert.Equal(new[] { "loss", "loss, smoothed", "text, smoothed", "audio, smoothed" }, lines.Select(l => l.LegendText));
        Assert.True(plot.Legend.IsVisible);

        plot.GetImage(TrainingPlots.Width, TrainingPlots.Height); // ticks are chosen when drawn
        var steps = plot.Axes.Bottom.TickGenerator.Ticks.Where(t => t.IsMajor).Select(t => t.Position).ToList();
        Assert.NotEmpty(steps);
        Assert.All(steps, s => Assert.Equal(Math.Round(s), s, 9));
        Assert.All(plot.Axes.Bottom.TickGenerator.Ticks.Where(t => t.IsMajor), t => Assert.DoesNotContain(".", t.Label));
        // loss labels are short decimals ("3.5"), not the data's own digits ("3.308")
        var labels = plot.Axes.Left.TickGenerator.Ticks.Where(t => t.IsMajor).Select(t => t.Label).ToList();
        Assert.NotEmpty(labels);
        Assert.All(labels, l => Assert.True(double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out _) && l.Length <= 4, $"tick label '{l}'"));
    }

    [Fact]
    public void The_raw_loss_is_drawn_at_steps_done_without_skipped_steps_and_the_smoothed_line_is_its_ema()
    {
        var history = History();
        var lines = TrainingPlots.Loss(history).GetPlottables().OfType<Scatter>().ToDictionary(l => l.LegendText);
        var raw = lines["loss"].Data.GetScatterPoints();
        var ok = history.Where(h => !h.Skipped).ToList();
        Assert.Equal(ok.Select(h => h.Step + 1.0), raw.Select(p => p.X));
        Assert.Equal(ok.Select(h => h.Loss), raw.Select(p => p.Y));
        var smoothed = lines["loss, smoothed"].Data.GetScatterPoints().Select(p => p.Y).ToArray();
        Assert.Equal(TrainingPlots.Ema(ok.Select(h => h.Loss).ToList(), TrainingPlots.SmoothingWeight(ok.Count)), smoothed);
    }

    [Fact]
    public void A_font_is_installed_for_the_plots_text_in_CI()
    {
        if (TrainingPlots.CanDrawText) return;
        if (Environment.GetEnvironmentVariable("CI") is not null)
            Assert.Fail("no font under /usr/share/fonts but CI=true: the CI script must install one (apt-get install fonts-dejavu-core)");
        Assert.Skip("no font under /usr/share/fonts (apt-get install fonts-dejavu-core): plots are drawn without any text here");
    }

    [Fact]
    public void Smoothing_is_an_exponential_moving_average_that_skips_missing_values()
    {
        var s = TrainingPlots.Ema(new[] { 1.0, 2.0, 3.0, double.NaN, 5.0 }, 0.5);
        Assert.Equal(1.0, s[0]);
        Assert.Equal(1.5, s[1], 12);    // 0.5·1 + 0.5·2
        Assert.Equal(2.25, s[2], 12);   // 0.5·1.5 + 0.5·3
        Assert.True(double.IsNaN(s[3]));
        Assert.Equal(3.625, s[4], 12);  // 0.5·2.25 + 0.5·5: the missing value left the average alone
        Assert.Equal(new[] { 4.0, 2.0 }, TrainingPlots.Ema(new[] { 4.0, 2.0 }, 0)); // weight 0: the values themselves
        // the span is a twentieth of the run: none for a 10-step demo, 5 points for 100 steps, at most 100
        Assert.Equal(0.0, TrainingPlots.SmoothingWeight(10), 12);
        Assert.Equal(1 - 2.0 / 6, TrainingPlots.SmoothingWeight(100), 12);
        Assert.Equal(1 - 2.0 / 101, TrainingPlots.SmoothingWeight(1_000_000), 12);
    }

    [Fact]
    public void The_codebook_and_validation_plots_have_one_line_per_codebook_and_per_validation_loss()
    {
        var cb = TrainingPlots.Codebooks(History());
        Assert.Equal(new[] { "codebook 0", "codebook 1", "codebook 2" }, cb.GetPlottables().OfType<Scatter>().Select(l => l.LegendText));
        Assert.Equal("step", cb.Axes.Bottom.Label.Text);
        var val = TrainingPlots.Validation(History(), Validations());
        var lines = val.GetPlottables().OfType<Scatter>().ToDictionary(l => l.LegendText);
        Assert.Equal(new[] { 0.0, 4, 8 }, lines["validation loss"].Data.GetScatterPoints().Select(p => p.X));
        Assert.Contains("training loss, smoothed", lines.Keys);
        Assert.Equal("loss", val.Axes.Left.Label.Text);
    }

    [Fact]
    public void Run_plot_draws_the_engine_loops_files_from_metrics_jsonl()
    {
        var metrics = _dir.File("metrics.jsonl");
        using (var log = new MetricsLog(metrics))
        {
            foreach (var s in History()) log.Step(s);
            foreach (var v in Validations()) log.Validation(v, best: false);
        }
        var files = RunLogCommands.WritePlots(metrics, _dir.Path);
        Assert.Equal(new[] { "loss.png", "codebooks.png", "validation.png" }, files.Select(Path.GetFileName));
        foreach (var f in files)
        {
            Assert.Equal(Path.Combine(_dir.Path, "plots"), Path.GetDirectoryName(f));
            var png = File.ReadAllBytes(f);
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
            Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
            Assert.Equal(TrainingPlots.Width, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
            Assert.Equal(TrainingPlots.Height, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
            Assert.True(png.Length > 10_000, $"{f}: {png.Length} bytes"); // drawn text and lines, not a blank canvas
        }
    }

    public void Dispose() => _dir.Dispose();
}
