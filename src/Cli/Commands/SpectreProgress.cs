using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using Spectre.Console;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// A live progress bar (loss, tokens/s, ETA) on an interactive terminal; elsewhere (redirected output, CI=true,
/// log.progress=off) plain lines. The bar runs on its own thread while the training thread reports into it.
/// </summary>
public sealed class SpectreProgress : ITrainingProgress
{
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _started = new(), _done = new();
    private ProgressTask? _task;
    private long _total = 1, _first;
    private string _line = "starting";

    public static ITrainingProgress For(string mode, TextWriter stdout, int logEvery)
    {
        bool terminal = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null && ReferenceEquals(stdout, Console.Out);
        return mode == "on" || (mode == "auto" && terminal) ? new SpectreProgress() : new LineProgress(stdout, logEvery);
    }

    private SpectreProgress() { _thread = new Thread(Loop) { IsBackground = true }; }

    private void Loop()
    {
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                _task = ctx.AddTask("training", maxValue: _total);
                _task.Value = _first;
                _started.Set();
                while (!_done.IsSet) { _task.Description = _line; ctx.Refresh(); _done.Wait(200); }
                _task.Description = _line; _task.StopTask();
            });
    }

    public void Begin(long firstStep, long totalSteps)
    {
        _first = firstStep; _total = Math.Max(1, totalSteps);
        _thread!.Start();
        _started.Wait();
    }

    public void Step(StepMetrics m, TimeSpan eta)
    {
        _line = Markup.Escape($"step {m.Step + 1}/{_total} loss {MetricsLog.F(m.Loss)} (text {MetricsLog.F(m.TextLoss)}, audio {MetricsLog.F(m.AudioLoss)}) {m.TokensPerSecond:0} tok/s eta {eta:hh\\:mm\\:ss}" +
                              (m.Skipped ? " " + StepMetrics.SkipNote(m.SkipReason) : ""));
        if (_task is not null) _task.Value = m.Step + 1;
    }

    public void Note(string line)
    {
        if (_task is null) Console.WriteLine(line);
        else AnsiConsole.MarkupLine(Markup.Escape(line));
    }

    public void End()
    {
        if (_thread is null || !_thread.IsAlive) return;
        _done.Set();
        _thread.Join();
    }
}
