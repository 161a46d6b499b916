using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.DataLoaderNode.Building;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.GpuWorker.Engine;
using HiggsCluster.Messages;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// A run on the cluster's own actors in one process: a one-node cluster on 127.0.0.1 with the coordinator, a loader
/// and <c>workers</c> workers (each its own model copy, all-reducing over the loopback ring). This is how `higgs train`
/// and `higgs demo` train by default: the code path of a multi-machine run. Progress comes from the lead worker's
/// metrics.jsonl; plots and the report are drawn from it at the end.
/// </summary>
public static class InProcessCluster
{
    /// <param name="gpus">
    /// With GPUs (<c>--gpus</c>): no worker in this process; one worker process per GPU instead (the
    /// <c>CUDA_VISIBLE_DEVICES</c> value of each, in rank order), logging to <c>OUTPUT/logs/</c>.
    /// </param>
    /// <param name="bases">
    /// The process's host copy of the base (the caller's, when it has loaded the base already): the workers of this
    /// process copy their models from it instead of reading the base from disk each.
    /// </param>
    public static TrainingOutcome Train(TrainOptions o, int workers, ITrainingProgress progress, string? resume = null, TimeSpan? timeout = null,
        IReadOnlyList<string>? gpus = null, TextWriter? log = null, BaseModels? bases = null)
    {
        if (gpus is not null) workers = gpus.Count;
        if (workers < 1) throw new Commands.CliUsageException($"--workers must be at least 1, got {workers}");
        var outDir = Path.GetFullPath(o.OutputDir);
        var spec = RunSpecFactory.From(o, "local-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff"), shardCount: 4, startWorkers: workers);
        if (resume is not null)
        {
            var dir = TrainerCheckpoint.Resolve(Path.Combine(outDir, "checkpoints"), resume);
            // refused here, before any actor starts: a worker would refuse it too, but as a failed run, not as a bad --resume
            TrainerCheckpoint.RequireFinite(dir);
            spec = RunSpecFactory.Resumed(spec, dir);
        }
        Directory.CreateDirectory(outDir);
        // the log as the lead will cut it when it first writes (as the engine loop does): until then the progress read
        // from it would show a fresh run the previous run's steps, or a resumed one a failed attempt's
        var metricsLog = Path.Combine(outDir, "metrics.jsonl");
        if (resume is null) File.Delete(metricsLog);
        else RunHistory.Read(metricsLog, spec.StartStep, truncate: true);
        TrainerBook.WriteResolvedConfig(outDir, o);

        var node = NodeOptionsFor(LocalPorts.Next());
        int local = gpus is null ? workers : 0;
        using var ownBases = bases is null && local > 0 ? new BaseModels() : null;
        var runners = Enumerable.Range(0, local).Select(_ => new EngineStepRunner(bases: bases ?? ownBases)).ToList();
        // workers of one process share its GPU, and NCCL refuses two ranks on one device: only a lone worker may use it
        var backends = new RealAllReduceBackends(allowNccl: workers == 1);
        using var builder = new SampleBatchBuilder();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) =>
        {
            b.AddHiggsNode(node).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.ErrorLevel).AddDataLoader(builder);
            for (int i = 0; i < local; i++) b.AddGpuWorker<CoordinatorKey>(runners[i], new GpuWorkerOptions { Name = $"gpu-worker-{i}", Backends = backends });
        })).Build();
        host.Start();
        var clock = Stopwatch.StartNew();
        GpuWorkerProcesses? children = null;
        try
        {
            if (gpus is not null) children = StartGpuWorkers(gpus, node.Port, outDir, log ?? TextWriter.Null);
            var coordinator = host.Services.GetRequiredService<ActorRegistry>().Get<CoordinatorKey>();
            var reply = coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(30)).Result;
            if (reply is RunRejected r) throw new Commands.CliUsageException($"run rejected: {r.Reason}");
            var metricsPath = Path.Combine(outDir, "metrics.jsonl");
            var feed = new MetricsProgressFeed(spec.StartStep);
            bool begun = false, ranksShown = false;
            RunStatus st;
            while (true)
            {
                st = coordinator.Ask<RunStatus>(new GetRunStatus(spec.RunId), TimeSpan.FromSeconds(30)).Result;
                if (!begun && st.TotalSteps > 0) { progress.Begin(spec.StartStep, st.TotalSteps); begun = true; }
                if (begun && File.Exists(metricsPath))
                {
                    var (steps, vals) = RunHistory.Read(metricsPath);
                    foreach (var e in feed.Next(steps, vals))
                    {
                        if (e.Validation is { } v) { progress.Note(MetricsProgressFeed.Line(v)); continue; }
                        var m = e.Step!;
                        double done = m.Step + 1 - spec.StartStep;
                        progress.Step(m, TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / Math.Max(1, done) * (st.TotalSteps - m.Step - 1)));
                    }
                }
                if (st.Phase is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped) break;
                if (children is not null) WatchGpuWorkers(children, coordinator, ref ranksShown, log ?? TextWriter.Null);
                if (timeout is { } t && clock.Elapsed > t) throw new TimeoutException($"run {spec.RunId} did not finish within {t}");
                Thread.Sleep(200);
            }
            if (begun) progress.End();
            if (st.Phase != RunPhase.Completed) throw new ClusterRunFailedException($"run {st.Phase}: {st.Detail}");
            var ledger = coordinator.Ask<RunLedger>(new GetRunLedger(spec.RunId), TimeSpan.FromSeconds(30)).Result;
            return Outcome(o, outDir, ledger, spec.StartStep, clock.Elapsed);
        }
        finally
        {
            children?.Stop(TimeSpan.FromSeconds(10));
            host.StopAsync().Wait();
            foreach (var r in runners) r.Dispose();
        }
    }

    private static GpuWorkerProcesses StartGpuWorkers(IReadOnlyList<string> gpus, int seedPort, string outDir, TextWriter log)
    {
        var (dotnet, dll) = GpuWorkerProcesses.Self();
        var ports = Enumerable.Range(LocalPorts.Block(gpus.Count), gpus.Count).ToList();
        // the engine's intra-op thread count: a CPU run then sums in the same order as the single-process engine
        var shared = new[] { "--seeds", $"127.0.0.1:{seedPort}", "--threads", TorchSharp.torch.get_num_threads().ToString(), "--remote-tls-cert", RemoteTlsOptions.Throwaway().Certificate };
        var plan = GpuWorkerProcesses.Plan(gpus, ports, shared, Path.Combine(outDir, "logs"), dotnet, dll);
        foreach (var c in plan)
            log.WriteLine($"train: worker process {c.Index}: CUDA_VISIBLE_DEVICES={c.Gpu}, port {c.Port}, log {c.LogPath}");
        return GpuWorkerProcesses.Start(plan);
    }

    /// <summary>Fails the run when every worker process is gone; says once which rank each GPU got.</summary>
    private static void WatchGpuWorkers(GpuWorkerProcesses children, IActorRef coordinator, ref bool ranksShown, TextWriter log)
    {
        var exited = children.Exited();
        if (exited.Count == children.Children.Count)
            throw new ClusterRunFailedException("every worker process exited: " + string.Join("; ", exited.Select(e =>
                $"GPU {e.Child.Gpu} (exit {e.ExitCode}): {GpuWorkerProcesses.Tail(e.Child, 3).ReplaceLineEndings(" | ")}")));
        if (ranksShown) return;
        var roster = coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(10)).Result;
        if (roster.Workers.Length < children.Children.Count) return;
        foreach (var w in roster.Workers.OrderBy(w => w.Rank))
        {
            var c = children.Children.FirstOrDefault(c => w.Path.Contains($":{c.Port}/", StringComparison.Ordinal));
            log.WriteLine($"train: rank {w.Rank}: GPU {c?.Gpu ?? "?"} (port {c?.Port.ToString() ?? "?"}, {(w.HasCuda ? "CUDA + NCCL" : "no NCCL: TCP ring")})");
        }
        ranksShown = true;
    }

    /// <summary>
    /// A one-node cluster whose coordinator journals in memory: the process is the whole cluster, so a journal could
    /// not outlive what it describes, and nothing (no database file, no snapshot folder) is left in the working
    /// directory. A local run is resumed from its checkpoints (`--resume`), not from a journal. Its remoting takes only
    /// peers with this process's throwaway certificate (its own worker processes), never a stranger on 127.0.0.1.
    /// </summary>
    public static NodeOptions NodeOptionsFor(int port) =>
        new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles, Journal = CoordinatorJournal.InMemory, RemoteTls = RemoteTlsOptions.Throwaway() }.Validate();

    /// <summary>Plots and report.md from what the run left in its folder, and the outcome the engine loop would report.</summary>
    private static TrainingOutcome Outcome(TrainOptions o, string outDir, RunLedger ledger, long start, TimeSpan wall)
    {
        var (history, vals) = RunHistory.Read(Path.Combine(outDir, "metrics.jsonl"));
        var cfg = HiggsAudioConfig.Load(Path.Combine(o.BaseModelDir, "config.json"));
        var adapterTensors = SafetensorsFile.ReadAll(Path.Combine(outDir, "adapter", LoraAdapter.WeightsFile));
        long trainable = adapterTensors.Values.Sum(t => t.numel());
        int modules = adapterTensors.Count / 2;
        foreach (var t in adapterTensors.Values) t.Dispose();
        var plan = o.Plan(ledger.PlannedTrainIds);
        var facts = new RunFacts(cfg.Text.NumHiddenLayers, cfg.Text.HiddenSize, cfg.AudioNumCodebooks, modules, trainable,
            ledger.PlannedTrainIds.Length, ledger.ValidationIds.Length, ledger.Problems, plan.TotalSteps, plan.StepsPerEpoch)
        {
            Corpora = CorpusCounts.Of(o, ledger.PlannedTrainIds, ledger.ValidationIds, plan),
        };
        var checkpoints = TrainerCheckpoint.List(Path.Combine(outDir, "checkpoints"));
        long next = ledger.Steps.Length;
        return RunOutcome.Finish(o, facts, history, vals, TrainerBook.BestOf(vals, o, plan), wall, checkpoints.Count > 0 ? checkpoints[^1].Dir : null,
            ledger.EarlyStopped, next - start, next, ledger.Steps.SelectMany(e => e.SampleIds).ToList());
    }
}

public sealed class ClusterRunFailedException(string message) : Exception(message);
