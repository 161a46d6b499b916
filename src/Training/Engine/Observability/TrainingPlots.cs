using ScottPlot;
using ScottPlot.Plottables;

namespace HiggsCluster.Training.Engine.Observability;

/// <summary>
/// The run's curves (plots/loss.png, codebooks.png, validation.png), drawn by ScottPlot: the engine loop, the
/// in-process cluster and the command host's `run plot` all draw through here, so the three agree.
/// </summary>
public static class TrainingPlots
{
    public const int Width = 800, Height = 480;

    private static readonly IPalette Palette = new ScottPlot.Palettes.Category10();

    // SkiaSharp's dependency-free Linux build reads the fonts under /usr/share/fonts itself (no fontconfig) and its
    // default is the first family found, often a serif one: a sans font is asked for by name
    private static readonly string? SansFont = new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Open Sans", "Arial" }
        .FirstOrDefault(SkiaSharp.SKFontManager.Default.FontFamilies.Contains);

    /// <summary>Whether a font is installed: without one the plots are drawn with no text at all (Debian: fonts-dejavu-core).</summary>
    public static bool CanDrawText => SkiaSharp.SKFontManager.Default.FontFamilies.Any();

    /// <summary>Builds the figures, writes them under <paramref name="dir"/> and returns their paths.</summary>
    public static List<string> Write(string dir, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> validations)
    {
        Directory.CreateDirectory(dir);
        var files = new List<string>();
        foreach (var (name, plot) in new[] { ("loss.png", Loss(history)), ("codebooks.png", Codebooks(history)), ("validation.png", Validation(history, validations)) })
        {
            var path = Path.Combine(dir, name);
            plot.SavePng(path, Width, Height);
            files.Add(path);
        }
        return files;
    }

    /// <summary>The loss of every trained step, faint, under its moving average and the text/audio parts' averages.</summary>
    public static Plot Loss(IReadOnlyList<StepMetrics> history)
    {
        var plot = Figure("training loss");
        var (steps, ok) = Trained(history);
        var color = Palette.GetColor(0);
        Line(plot, steps, ok.Select(h => h.Loss), "loss", color.WithAlpha(0.3), width: 1);
        Line(plot, steps, Ema(ok.Select(h => h.Loss).ToList(), SmoothingWeight(ok.Count)), "loss, smoothed", color, width: 2);
        Line(plot, steps, Ema(ok.Select(h => h.TextLoss).ToList(), SmoothingWeight(ok.Count)), "text, smoothed", Palette.GetColor(1), width: 1.5f);
        Line(plot, steps, Ema(ok.Select(h => h.AudioLoss).ToList(), SmoothingWeight(ok.Count)), "audio, smoothed", Palette.GetColor(2), width: 1.5f);
        return plot;
    }

    /// <summary>Each audio codebook's loss, smoothed: raw, eight noisy curves hide each other.</summary>
    public static Plot Codebooks(IReadOnlyList<StepMetrics> history)
    {
        var plot = Figure("training loss per codebook (smoothed)");
        var (steps, ok) = Trained(history);
        int k = ok.Count > 0 ? ok.Max(h => h.CodebookLosses.Length) : 0;
        for (int c = 0; c < k; c++)
        {
            var ys = ok.Select(h => h.CodebookLosses.Length > c ? h.CodebookLosses[c] : double.NaN).ToList();
            Line(plot, steps, Ema(ys, SmoothingWeight(ok.Count)), $"codebook {c}", Palette.GetColor(c % 10), width: 1.5f);
        }
        return plot;
    }

    /// <summary>Validation losses with markers (they are few), over the smoothed training loss for comparison.</summary>
    public static Plot Validation(IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> validations)
    {
        var plot = Figure("validation loss");
        var vs = validations.Select(v => (double)v.Step).ToList();
        Line(plot, vs, validations.Select(v => v.Loss), "validation loss", Palette.GetColor(3), width: 2, marker: 6);
        Line(plot, vs, validations.Select(v => v.TextLoss), "validation text", Palette.GetColor(1), width: 1.5f, marker: 5);
        Line(plot, vs, validations.Select(v => v.AudioLoss), "validation audio", Palette.GetColor(2), width: 1.5f, marker: 5);
        var (steps, ok) = Trained(history);
        Line(plot, steps, Ema(ok.Select(h => h.Loss).ToList(), SmoothingWeight(ok.Count)), "training loss, smoothed", Palette.GetColor(0).WithAlpha(0.5), width: 1.5f);
        return plot;
    }

    /// <summary>
    /// Exponential moving average, s₀ = y₀ and sₜ = w·sₜ₋₁ + (1−w)·yₜ (TensorBoard's smoothing without its start-up
    /// debiasing: starting from the first value needs none). A missing value (NaN) stays missing and leaves the average as it was.
    /// </summary>
    public static double[] Ema(IReadOnlyList<double> ys, double weight)
    {
        if (weight is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(weight), weight, "a smoothing weight is in [0, 1)");
        var s = new double[ys.Count];
        double avg = double.NaN;
        for (int i = 0; i < ys.Count; i++)
        {
            if (double.IsFinite(ys[i])) avg = double.IsNaN(avg) ? ys[i] : weight * avg + (1 - weight) * ys[i];
            s[i] = double.IsFinite(ys[i]) ? avg : double.NaN;
        }
        return s;
    }

    /// <summary>
    /// The weight of an EMA spanning a twentieth of the run (at most 100 steps; pandas' span: w = 1 − 2/(span+1)):
    /// a 10-step demo is drawn as it is, a long run's curve shows its trend through the step-to-step noise.
    /// </summary>
    public static double SmoothingWeight(int points)
    {
        double span = Math.Clamp(points / 20.0, 1, 100);
        return 1 - 2 / (span + 1);
    }

    private static Plot Figure(string title)
    {
        var plot = new Plot();
        if (SansFont is not null) plot.Font.Set(SansFont);
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("loss");
        // steps are whole numbers: no 2.5 on the step axis of a short run
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    /// <summary>Train steps are drawn at the number of steps done (step 0 ends at 1), where a validation after it is logged.</summary>
    private static (List<double> Steps, List<StepMetrics> Ok) Trained(IReadOnlyList<StepMetrics> history)
    {
        var ok = history.Where(h => !h.Skipped).ToList();
        return (ok.Select(h => (double)h.Step + 1).ToList(), ok);
    }

    private static void Line(Plot plot, IReadOnlyList<double> xs, IEnumerable<double> ys, string label, Color color, float width, float marker = 0)
    {
        // non-finite values (a step with no audio targets logs its audio loss as missing) are left out, not drawn at 0
        var pts = xs.Zip(ys).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second)).ToList();
        if (pts.Count == 0) return;
        Scatter s = plot.Add.Scatter(pts.Select(p => p.First).ToArray(), pts.Select(p => p.Second).ToArray(), color);
        s.LegendText = label;
        s.LineWidth = width;
        // a lone point has no line to show it
        s.MarkerSize = pts.Count == 1 ? Math.Max(marker, 6) : marker;
    }
}
