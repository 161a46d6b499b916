using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench chaos [--minutes 4] [--seed 1] [--entries 20] [--epochs 4] [--threads 1]`: tiny runs on a loopback cluster
/// (coordinator here, two loader and two worker <c>higgs node</c> processes) one after the other, each with a random
/// bounded kill schedule drawn from the seed: a worker killed and restarted, a worker killed for good, and/or a loader
/// killed, each at a random step and point through <c>--fault</c> (the process SIGKILLs itself: no graceful leave).
/// At most one worker and one loader die per run, so one of each is always left. Prints per run what died and whether
/// the run completed, then totals: runs, kills, recoveries, lost or repeated samples (must be 0) and recovery times
/// per kind (kill → the next step committed; for a restart also kill → the healed two-worker group's first commit).
/// Also compares every final adapter with the uninterrupted single-process run of the same seed. Asserts nothing.
/// A run whose coordinator stops answering, or that commits nothing for <c>--stall-seconds</c> (default 120), is
/// reported as a failed (stalled) run with the coordinator's and the nodes' log tails; the bench never waits on it.
/// <c>--repeat-run N</c> runs the N-th schedule of the seed over and over (to reproduce one case), <c>--runs K</c>
/// stops after K runs, <c>--log-dir D</c> keeps each run's coordinator log and every node's output there.
/// </summary>
internal static class ChaosBench
{
    private enum Kind { WorkerRestart, WorkerGone, Loader }

    private sealed record Kill(Kind Kind, string Fault, long Step);

    private sealed record Recovery(Kind Kind, double ToNextCommit, double? ToHealedGroup);

    public static int Run(BenchArgs a)
    {
        double minutes = a.Int("minutes", 4);
        int seed = a.Int("seed", 1), entries = a.Int("entries", 20), threads = a.Int("threads", 1), epochs = a.Int("epochs", 4);
        int repeatRun = a.Int("repeat-run", 0), maxRuns = a.Int("runs", int.MaxValue);
        var stall = TimeSpan.FromSeconds(a.Int("stall-seconds", 120));
        string? stackTool = a.Str("stack-tool", "") is { Length: > 0 } t ? t : null;
        string? logDir = a.Str("log-dir", "") is { Length: > 0 } d ? Directory.CreateDirectory(d).FullName : null;
        set_num_threads(threads);
        var rnd = new Random(seed);
        var root = Path.Combine(Path.GetTempPath(), "higgs-chaos-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ws = DemoWorkspace.Create(Path.Combine(root, "ws"), entries, seed: 5, hidden: 32, layers: 2);
            TrainingOutcome reference;
            using (var session = TrainingSession.Open(Options(ws, Path.Combine(root, "single"), epochs), TextWriter.Null))
                reference = new TrainingRun(session, new LineProgress(TextWriter.Null, 1000)).Run();
            long steps = reference.NextStep;
            Console.WriteLine($"chaos: {steps}-step runs (tiny model, 2 loaders + 2 workers on 127.0.0.1), {minutes} min, seed {seed}, {Environment.ProcessorCount} cores");

            var clock = Stopwatch.StartNew();
            var recoveries = new List<Recovery>();
            int runs = 0, completed = 0, kills = 0, lost = 0, repeated = 0, doubleCommits = 0, stalled = 0;
            double worstDiff = 0;
            List<Kill>? fixedSchedule = null;
            for (int i = 0; i < repeatRun; i++) fixedSchedule = Draw(rnd, steps);
            while (clock.Elapsed.TotalMinutes < minutes && runs < maxRuns)
            {
                var schedule = fixedSchedule ?? Draw(rnd, steps);
                var runId = $"chaos-{++runs}";
                var outcome = OneRun(ws, Path.Combine(root, runId), runId, schedule, threads, epochs, stall, stackTool, logDir);
                if (outcome.Stalled) stalled++;
                if (logDir is not null) File.WriteAllLines(Path.Combine(logDir, runId + ".coordinator.log"), outcome.CoordinatorLog);
                kills += outcome.Fired;
                recoveries.AddRange(outcome.Recoveries);
                lost += outcome.Lost; repeated += outcome.Repeated; doubleCommits += outcome.DoubleCommits;
                double diff = outcome.Completed ? MaxDiff(reference.AdapterDir, Path.Combine(root, runId, "adapter")) : double.NaN;
                if (outcome.Completed) { completed++; worstDiff = Math.Max(worstDiff, diff); }
                Console.WriteLine($"run {runs}: {string.Join("; ", schedule.Select(k => $"{k.Kind} {k.Fault}"))} -> {(outcome.Stalled ? "STALLED" : outcome.Phase.ToString())} in {outcome.Seconds:F1} s; " +
                                  $"fired {outcome.Fired}, lost {outcome.Lost}, repeated {outcome.Repeated}, steps committed twice {outcome.DoubleCommits}; " +
                                  $"adapter max |diff| vs uninterrupted {diff:G3}; " +
                                  string.Join(", ", outcome.Recoveries.Select(r => $"{r.Kind} next commit {r.ToNextCommit:F2} s" + (r.ToHealedGroup is { } h ? $", healed group {h:F2} s" : ""))));
                if (!outcome.Completed) Console.WriteLine(outcome.Tail);
            }

            Console.WriteLine($"runs {runs}, completed {completed}, stalled {stalled}, kills {kills}, recoveries {recoveries.Count}, lost samples {lost}, repeated samples {repeated}, " +
                              $"steps committed twice {doubleCommits}, worst adapter |diff| vs uninterrupted {worstDiff:G3}");
            foreach (var g in recoveries.GroupBy(r => r.Kind).OrderBy(g => g.Key))
            {
                var next = g.Select(r => r.ToNextCommit).Order().ToList();
                var healed = g.Where(r => r.ToHealedGroup is not null).Select(r => r.ToHealedGroup!.Value).Order().ToList();
                Console.WriteLine($"recovery {g.Key}: kill -> next commit median {next[next.Count / 2]:F2} s, max {next[^1]:F2} s over {next.Count}" +
                                  (healed.Count > 0 ? $"; kill -> healed group's first commit median {healed[healed.Count / 2]:F2} s, max {healed[^1]:F2} s" : ""));
            }
            Console.WriteLine($"RESULT chaos runs={runs} completed={completed} stalled={stalled} kills={kills} recoveries={recoveries.Count} lost={lost} repeated={repeated} double_commits={doubleCommits}");
            int rc = lost == 0 && repeated == 0 && doubleCommits == 0 && completed == runs ? 0 : 1;
            // a coordinator host that would not stop holds threads that can keep the process alive: never hang on it
            if (Abandoned > 0) { Console.Out.Flush(); Environment.Exit(rc); }
            return rc;
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Same configuration as the fault tests: global batch 4 = micro 1 × accumulation 2 × 2 plan ranks, dropout on
    /// (masks seeded per step, rank and micro-batch, so whoever computes a micro-batch draws the same).
    /// </summary>
    private static TrainOptions Options(DemoWorkspace ws, string outputDir, int epochs)
    {
        var o = ws.TrainOptions(outputDir, maxSteps: 0);
        o.Epochs = epochs; o.MaxSteps = 0;
        o.BatchSize = 1; o.GradAccumulation = 2; o.Ranks = 2;
        o.ValSteps = 3; o.SaveSteps = 4; o.ValidationFraction = 0.2;
        o.LoraDropout = 0.1;
        o.WarmupSteps = 1; o.Progress = "off"; o.TensorBoard = false; o.Plots = false;
        return o;
    }

    /// <summary>One or two kills: at most one worker (restarted or not) and one loader, at distinct steps after step 0.</summary>
    private static List<Kill> Draw(Random rnd, long steps)
    {
        var kills = new List<Kill>();
        long last = Math.Max(2, steps - 1);
        int shape = rnd.Next(4); // 0 worker restart, 1 worker gone, 2 loader, 3 worker (either) + loader
        if (shape is 0 or 1 or 3)
        {
            long step = rnd.NextInt64(1, last);
            var point = rnd.Next(2) == 0 ? "before-allreduce" : "after-allreduce";
            var kind = shape == 0 || (shape == 3 && rnd.Next(2) == 0) ? Kind.WorkerRestart : Kind.WorkerGone;
            kills.Add(new Kill(kind, $"kill:worker@step={step},point={point}", step));
        }
        if (shape is 2 or 3)
        {
            long step = rnd.NextInt64(1, last);
            if (kills.Count > 0 && kills[0].Step == step) step = step + 1 < last ? step + 1 : step - 1;
            kills.Add(new Kill(Kind.Loader, $"kill:loader@step={step}", step));
        }
        return kills;
    }

    private sealed record RunOutcome(RunPhase Phase, bool Completed, bool Stalled, double Seconds, int Fired, List<Recovery> Recoveries,
        int Lost, int Repeated, int DoubleCommits, string Tail, IReadOnlyList<string> CoordinatorLog);

    /// <summary>Coordinator hosts that did not stop in time (left behind rather than waited on).</summary>
    private static int Abandoned;

    private static RunOutcome OneRun(DemoWorkspace ws, string outDir, string runId, List<Kill> schedule, int threads, int epochs, TimeSpan stall,
        string? stackTool, string? logDir)
    {
        int port = LocalPorts.Next();
        var seeds = $"127.0.0.1:{port}";
        var node = new NodeOptions { Port = port, Seeds = new[] { seeds }, Roles = new[] { "coordinator" }, RemoteTls = RemoteTlsOptions.Throwaway() }.Validate();
        CapturedLog.Clear();
        var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) =>
            b.AddHiggsNode(node).ConfigureLoggers(l =>
            {
                l.LogLevel = Akka.Event.LogLevel.InfoLevel;
                l.ClearLoggers();
                l.AddLogger<CapturedLog>();
            }))).Build();
        host.Start();
        var procs = new Dictionary<string, (Process P, List<string> Out)>();
        var ports = new Dictionary<string, int>();
        void Start(string name, string role, string? fault)
        {
            ports.TryAdd(name.TrimEnd('b'), LocalPorts.Next());
            var args = new List<string> { "node", "--role", role, "--port", ports[name.TrimEnd('b')].ToString(), "--seeds", seeds, "--threads", threads.ToString(),
                "--remote-tls-cert", RemoteTlsOptions.Throwaway().Certificate };
            if (fault is not null) { args.Add("--fault"); args.Add(fault); }
            procs[name] = StartNode(args);
        }
        var workerKill = schedule.FirstOrDefault(k => k.Kind != Kind.Loader);
        var loaderKill = schedule.FirstOrDefault(k => k.Kind == Kind.Loader);
        try
        {
            Start("loader-1", "loader", null);
            Start("loader-2", "loader", loaderKill?.Fault);
            Start("worker-1", "worker", null);
            Start("worker-2", "worker", workerKill?.Fault);
            var coordinator = host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>().GetAwaiter().GetResult();
            var spec = RunSpecFactory.From(Options(ws, outDir, epochs), runId, shardCount: 4, startWorkers: 2);
            var clock = Stopwatch.StartNew();
            var watched = new List<(string Name, Kind Kind, double At, long Committed, double? Next, double? Healed)>();
            foreach (var k in schedule) watched.Add((k.Kind == Kind.Loader ? "loader-2" : "worker-2", k.Kind, double.NaN, 0, null, null));
            string Tails(string why) => $"{why}\n" + string.Join("\n", procs.Select(p => $"[{p.Key}{(p.Value.P.HasExited ? $" exited {p.Value.P.ExitCode}" : "")}] " +
                string.Join("\n  ", Snapshot(p.Value.Out).TakeLast(12)))) + "\n[coordinator] " + string.Join("\n  ", CapturedLog.Snapshot().TakeLast(25));
            RunOutcome Stalled(string why, RunStatus? last)
            {
                StackDump(stackTool, logDir, runId);
                return new(last?.Phase ?? RunPhase.Submitted, false, true, clock.Elapsed.TotalSeconds, watched.Count(w => !double.IsNaN(w.At)),
                    new List<Recovery>(), 0, 0, 0, Tails($"STALLED: {why}"), CapturedLog.Snapshot());
            }
            if (Answer<object>(coordinator, new SubmitRun(spec), TimeSpan.FromSeconds(30)) is not RunAccepted)
                return Stalled("the coordinator did not accept the run within 30 s", null);

            RunStatus? st = null;
            var deadline = TimeSpan.FromMinutes(6);
            var lastAnswer = clock.Elapsed;
            (long Steps, TimeSpan At) progress = (-1, clock.Elapsed);
            do
            {
                Thread.Sleep(50);
                // a loaded machine can hold an answer up: ask again, but a coordinator silent for a minute has stalled
                var answer = Answer<RunStatus>(coordinator, new GetRunStatus(runId), TimeSpan.FromSeconds(10));
                if (answer is null)
                {
                    if (clock.Elapsed - lastAnswer > TimeSpan.FromSeconds(60))
                        return Stalled($"the coordinator has not answered a status query for {(clock.Elapsed - lastAnswer).TotalSeconds:F0} s", st);
                    continue;
                }
                st = answer;
                lastAnswer = clock.Elapsed;
                if (st.CommittedSteps != progress.Steps) progress = (st.CommittedSteps, clock.Elapsed);
                else if (clock.Elapsed - progress.At > stall)
                    return Stalled($"no step committed for {(clock.Elapsed - progress.At).TotalSeconds:F0} s (at step {st.CommittedSteps}, {st.Phase}: {st.Detail})", st);
                double now = clock.Elapsed.TotalSeconds;
                for (int i = 0; i < watched.Count; i++)
                {
                    var w = watched[i];
                    if (double.IsNaN(w.At) && procs[w.Name].P.HasExited && st.CommittedSteps >= 0)
                    {
                        w = w with { At = now, Committed = st.CommittedSteps };
                        if (w.Kind == Kind.WorkerRestart) Start("worker-2b", "worker", null); // same port: a new incarnation
                    }
                    if (!double.IsNaN(w.At) && w.Next is null && st.CommittedSteps > w.Committed) w = w with { Next = now - w.At };
                    if (!double.IsNaN(w.At) && w.Kind == Kind.WorkerRestart && w.Healed is null && st.CommittedSteps > w.Committed)
                    {
                        var ledger = Answer<RunLedger>(coordinator, new GetRunLedger(runId), TimeSpan.FromSeconds(20));
                        if (ledger is not null && ledger.Steps.Any(e => e.GlobalStep >= w.Committed && e.World == 2)) w = w with { Healed = now - w.At };
                    }
                    watched[i] = w;
                }
            } while ((st is null || !Ended(st.Phase)) && clock.Elapsed < deadline);
            if (st is null || !Ended(st.Phase))
                return Stalled($"not finished after {deadline.TotalMinutes} min (at step {st?.CommittedSteps}, {st?.Phase}: {st?.Detail})", st);

            var final = Answer<RunLedger>(coordinator, new GetRunLedger(runId), TimeSpan.FromSeconds(30));
            if (final is null) return Stalled($"the run ended {st.Phase} but the coordinator did not answer a ledger query within 30 s", st);
            var (lost, repeated, twice) = Audit(final);
            var recovered = watched.Where(w => !double.IsNaN(w.At) && w.Next is not null)
                .Select(w => new Recovery(w.Kind, w.Next!.Value, w.Healed)).ToList();
            return new RunOutcome(st.Phase, st.Phase == RunPhase.Completed, false, clock.Elapsed.TotalSeconds, watched.Count(w => !double.IsNaN(w.At)),
                recovered, lost, repeated, twice, Tails($"status: {st.Detail}"), CapturedLog.Snapshot());
        }
        finally
        {
            if (logDir is not null)
                foreach (var (name, (_, lines)) in procs) File.WriteAllLines(Path.Combine(logDir, $"{runId}.{name}.log"), Snapshot(lines));
            foreach (var (p, _) in procs.Values)
            {
                try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } } catch (InvalidOperationException) { }
                p.Dispose();
            }
            // a wedged coordinator never stops: give it 30 s, then leave it behind (the process exits at the end)
            var stop = Task.Run(async () =>
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                await host.StopAsync(cts.Token);
                host.Dispose();
            });
            if (!stop.Wait(TimeSpan.FromSeconds(30)) || stop.IsFaulted)
            {
                Abandoned++;
                Console.WriteLine($"{runId}: the coordinator host did not stop within 30 s ({stop.Exception?.GetBaseException().Message ?? "still stopping"}); left behind");
            }
        }
    }

    /// <summary>
    /// With <c>--stack-tool</c> (dotnet-stack) and <c>--log-dir</c>: every thread's managed stack of this process (the
    /// coordinator's host) when a run stalls, to see where the coordinator is stuck.
    /// </summary>
    private static bool StackDump(string? tool, string? logDir, string runId)
    {
        if (tool is null || logDir is null) return false;
        try
        {
            var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var x in new[] { "report", "-p", Environment.ProcessId.ToString() }) psi.ArgumentList.Add(x);
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(60_000)) { p.Kill(); return false; }
            File.WriteAllText(Path.Combine(logDir, runId + ".stacks.txt"), text.Result + p.StandardError.ReadToEnd());
            return true;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }

    private static bool Ended(RunPhase p) => p is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped;

    /// <summary>The answer, or null when none came in time (the bench reports that instead of throwing).</summary>
    private static T? Answer<T>(IActorRef to, object query, TimeSpan timeout) where T : class
    {
        try { return to.Ask<T>(query, timeout).GetAwaiter().GetResult(); }
        catch (AskTimeoutException) { return null; }
        catch (TaskCanceledException) { return null; }
    }

    /// <summary>Planned samples not consumed in an epoch, samples consumed more than once in an epoch, and steps committed twice.</summary>
    private static (int Lost, int Repeated, int Twice) Audit(RunLedger ledger)
    {
        int lost = 0, repeated = 0;
        var planned = ledger.PlannedTrainIds.ToHashSet();
        foreach (var epoch in ledger.Steps.Select(e => e.Epoch).Distinct())
        {
            var got = ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).ToList();
            lost += planned.Count(id => !got.Contains(id));
            repeated += got.Count - got.Distinct().Count();
        }
        // (a run that did not finish is counted as not completed, not as losing the steps it never reached)
        int twice = ledger.Steps.Length - ledger.Steps.Select(e => e.GlobalStep).Distinct().Count();
        return (lost, repeated, twice);
    }

    private static double MaxDiff(string referenceAdapter, string adapter)
    {
        var path = Path.Combine(adapter, "adapter_model.safetensors");
        if (!File.Exists(path)) return double.NaN;
        var mine = SafetensorsFile.ReadAll(path);
        var theirs = SafetensorsFile.ReadAll(Path.Combine(referenceAdapter, "adapter_model.safetensors"));
        double worst = 0;
        foreach (var (name, t) in theirs)
        {
            if (!mine.TryGetValue(name, out var m)) return double.PositiveInfinity;
            worst = Math.Max(worst, (t - m).abs().max().item<float>());
        }
        return worst;
    }

    private static List<string> Snapshot(List<string> lines) { lock (lines) return lines.ToList(); }

    private static (Process, List<string>) StartNode(List<string> args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "higgs.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var x in args) psi.ArgumentList.Add(x);
        var p = Process.Start(psi)!;
        var lines = new List<string>();
        p.OutputDataReceived += (_, e) => { if (e.Data is { } l) lock (lines) lines.Add(l); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } l) lock (lines) lines.Add("ERR " + l); };
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        return (p, lines);
    }

}
