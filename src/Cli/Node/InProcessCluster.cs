using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.DataLoaderNode.Building;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.Engine;
using HiggsCluster.Messages;
using HiggsCluster.Training.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// A run on the cluster's own actors in one process: a one-node cluster on 127.0.0.1 with the coordinator, a loader
/// and <c>workers</c> workers (each its own model copy, all-reducing over the loopback ring). What `higgs train
/// --workers N` and `higgs demo --workers N` use; the same code path as a multi-machine run.
/// </summary>
public static class InProcessCluster
{
    public static RunStatus Train(TrainOptions o, int workers, TextWriter log, TimeSpan? timeout = null)
    {
        if (workers < 1) throw new Commands.CliUsageException($"--workers must be at least 1, got {workers}");
        var port = FreePort();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles }.Validate();
        var runners = Enumerable.Range(0, workers).Select(_ => new EngineStepRunner()).ToList();
        using var builder = new SampleBatchBuilder();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) =>
        {
            b.AddHiggsNode(node).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.ErrorLevel).AddDataLoader(builder);
            for (int i = 0; i < workers; i++) b.AddGpuWorker<CoordinatorKey>(runners[i], new GpuWorkerOptions { Name = $"gpu-worker-{i}" });
        })).Build();
        host.Start();
        try
        {
            var coordinator = host.Services.GetRequiredService<ActorRegistry>().Get<CoordinatorKey>();
            var runId = "local-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss");
            var spec = RunSpecFactory.From(o, runId, shardCount: 4, startWorkers: workers);
            var reply = coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(30)).Result;
            if (reply is RunRejected r) throw new Commands.CliUsageException($"run rejected: {r.Reason}");
            log.WriteLine($"cluster: in-process run {runId} with {workers} worker(s), {o.Ranks} plan rank(s)");
            var clock = Stopwatch.StartNew();
            long printed = 0;
            string lastDetail = "";
            while (true)
            {
                var st = coordinator.Ask<RunStatus>(new GetRunStatus(runId), TimeSpan.FromSeconds(30)).Result;
                if (st.CommittedSteps > printed && (st.CommittedSteps % Math.Max(1, o.LogSteps) == 0 || st.CommittedSteps == st.TotalSteps))
                {
                    printed = st.CommittedSteps;
                    log.WriteLine($"step {st.CommittedSteps,6}/{st.TotalSteps}  loss {Training.Engine.Observability.MetricsLog.F(StepStats.Loss(st.LastStats))}  {clock.Elapsed:hh\\:mm\\:ss}");
                }
                if (st.Detail != lastDetail && st.Phase is not RunPhase.Training) { log.WriteLine($"cluster: {st.Phase}: {st.Detail}"); lastDetail = st.Detail; }
                if (st.Phase is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped) return st;
                if (timeout is { } t && clock.Elapsed > t) throw new TimeoutException($"run {runId} did not finish within {t}");
                Thread.Sleep(200);
            }
        }
        finally
        {
            host.StopAsync().Wait();
            foreach (var r in runners) r.Dispose();
        }
    }

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }
}
