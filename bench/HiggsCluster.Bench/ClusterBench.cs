using System.Diagnostics;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench cluster [--hidden 256] [--layers 6] [--steps 40] [--entries 24] [--batch 4] [--threads 1] [--mib 8]`:
/// (1) step time of a multi-process loopback cluster (coordinator here, one loader and one worker process) ÷ the
/// single-process engine's on the same run; (2) batch transfer MB/s loader → worker between two cluster nodes;
/// (3) data supply of 1 vs 2 loader processes (prepare with a cold and a warm code cache, then serving), against the
/// worker's demand from (1). Prints numbers and ratios; asserts nothing.
/// </summary>
internal static class ClusterBench
{
    public static int Run(BenchArgs a)
    {
        int hidden = a.Int("hidden", 256), layers = a.Int("layers", 6), steps = a.Int("steps", 40), entries = a.Int("entries", 24);
        int batch = a.Int("batch", 4), threads = a.Int("threads", 1), mib = a.Int("mib", 8);
        set_num_threads(threads);
        var root = Path.Combine(Path.GetTempPath(), "higgs-cluster-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ws = DemoWorkspace.Create(Path.Combine(root, "ws"), entries, seed: 2, hidden: hidden, layers: layers);
            Console.WriteLine($"cluster bench: hidden {hidden}, {layers} layers, batch {batch}, {steps} steps, {threads} thread(s) per process, {Environment.ProcessorCount} cores");

            // (1) step time: engine vs cluster on the same run
            var engineOptions = Options(ws, Path.Combine(root, "engine"), steps, batch);
            double engineCpu;
            using (var s = TrainingSession.Open(engineOptions, TextWriter.Null))
            {
                var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                new TrainingRun(s, new LineProgress(TextWriter.Null, 1000)).Run();
                engineCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / steps;
            }
            double engineStep = MedianStepSeconds(Path.Combine(engineOptions.OutputDir, "metrics.jsonl"));
            var clusterOptions = Options(ws, Path.Combine(root, "cluster"), steps, batch);
            var (clusterStep, _, _, cpu) = ClusterRun(clusterOptions, loaders: 1, workerProcess: true, threads);
            double workerStep = MedianStepSeconds(Path.Combine(clusterOptions.OutputDir, "metrics.jsonl"));
            Console.WriteLine($"step time: engine {engineStep * 1000:0} ms, cluster {clusterStep * 1000:0} ms between commits " +
                              $"(1 loader + 1 worker process; the worker's own step, first micro-batch to optimizer step: {workerStep * 1000:0} ms)");
            Console.WriteLine($"cluster step time / in-process step time: {clusterStep / engineStep:0.000} (target <= 1.05)");
            // CPU seconds per step do not depend on what else the machine runs (wall times above do)
            Console.WriteLine($"CPU per step: engine process {engineCpu * 1000:0} ms; cluster worker {cpu["worker"] * 1000:0} ms + loader {cpu["loader"] * 1000:0} ms " +
                              $"+ coordinator {cpu["coordinator"] * 1000:0} ms; worker CPU / engine CPU: {cpu["worker"] / engineCpu:0.000}");
            Console.WriteLine($"RESULT cluster_overhead cluster/engine={clusterStep / engineStep:0.000} wall (median {clusterStep * 1000:0} ms / {engineStep * 1000:0} ms per step; " +
                              $"target <= 1.05); worker CPU / engine CPU = {cpu["worker"] / engineCpu:0.000} (load-independent)");
            double demand = batch / engineStep;

            // (2) batch transfer between two nodes
            var mbps = Transfer(mib, batches: 40);
            Console.WriteLine($"batch transfer loader -> worker: {mbps:0} MB/s ({mib} MiB batches, window 3, loopback)");

            Console.WriteLine($"RESULT cluster_batch_transfer {mbps:0} MB/s loader -> worker over loopback remoting ({mib} MiB batches)");

            // (3) supply: no-op worker here, 1 or 2 loader processes, cold then warm code cache
            foreach (int loaders in new[] { 1, 2 })
            {
                // max_steps 0 with one epoch: every sample once
                var cold = Options(ws, Path.Combine(root, $"supply-{loaders}"), steps: 0, batch);
                cold.CodeCache = Path.Combine(root, $"cache-{loaders}");
                var (_, prepareCold, serveCold, _) = ClusterRun(cold, loaders, workerProcess: false, threads);
                var (_, prepareWarm, serveWarm, _) = ClusterRun(cold, loaders, workerProcess: false, threads);
                Console.WriteLine($"supply, {loaders} loader process(es): prepare {entries / prepareCold:0.0} samples/s cold (encoding), " +
                                  $"{entries / prepareWarm:0.0} warm (cached codes); serving {serveCold:0.0} / {serveWarm:0.0} samples/s");
                Console.WriteLine($"supply/demand ({loaders} loader(s), warm serving vs the worker's {demand:0.0} samples/s): {serveWarm / demand:0.00} (target >= 2)");
                Console.WriteLine($"RESULT data_{(loaders == 1 ? "one_loader" : "two_loaders")} cold prepare {entries / prepareCold:0.0} samples/s, warm prepare {entries / prepareWarm:0.0} samples/s, " +
                                  $"warm serving {serveWarm:0.0} samples/s = {serveWarm / demand:0.00}x a worker's demand (target >= 2)");
            }
            return 0;
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static TrainOptions Options(DemoWorkspace ws, string outputDir, int steps, int batch)
    {
        var o = ws.TrainOptions(outputDir, Math.Max(1, steps));
        o.Epochs = 1; o.MaxSteps = steps; o.BatchSize = batch; o.GradAccumulation = 1; o.Ranks = 1;
        o.ValidationFraction = 0; o.ValSteps = 0; o.SaveSteps = 0; o.Progress = "off"; o.Plots = false; o.TensorBoard = false;
        return o;
    }

    private static double MedianStepSeconds(string metrics)
    {
        var s = File.ReadLines(metrics).Select(l => JsonNode.Parse(l)!).Where(j => j["type"]!.GetValue<string>() == "train")
            .Select(j => j["step_s"]!.GetValue<double>()).Skip(2).Order().ToList();
        return s[s.Count / 2];
    }

    /// <summary>
    /// One run on a loopback cluster: coordinator here; loaders as processes; the worker a process (the real engine) or a
    /// no-op worker here (to measure supply). Returns (seconds per step between commits, prepare seconds, samples/s served).
    /// </summary>
    private static (double Step, double Prepare, double Serve, Dictionary<string, double> CpuPerStep) ClusterRun(TrainOptions o, int loaders, bool workerProcess, int threads)
    {
        int port = LocalPorts.Next();
        var seeds = $"127.0.0.1:{port}";
        var node = new NodeOptions { Port = port, Seeds = new[] { seeds }, Roles = new[] { "coordinator" }, RemoteTls = RemoteTlsOptions.Throwaway() }.Validate();
        var noop = new NoopRunner();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) =>
        {
            b.AddHiggsNode(node).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.ErrorLevel);
            if (!workerProcess) b.AddGpuWorker<CoordinatorKey>(noop);
        })).Build();
        host.Start();
        var procs = new List<Process>();
        try
        {
            var roles = new List<string>();
            for (int i = 0; i < loaders; i++) { procs.Add(StartNode("loader", seeds, threads)); roles.Add("loader"); }
            if (workerProcess) { procs.Add(StartNode("worker", seeds, threads)); roles.Add("worker"); }
            var cpuAtFirst = new double[procs.Count];
            TimeSpan selfAtFirst = TimeSpan.Zero;
            var coordinator = host.Services.GetRequiredService<ActorRegistry>().Get<CoordinatorKey>();
            var runId = "bench-" + Guid.NewGuid().ToString("N")[..8];
            // wait until every node is up, so shards are spread over all loaders from the start
            var status = host.Services.GetRequiredService<ActorSystem>();
            var cluster = Akka.Cluster.Cluster.Get(status);
            var up = Stopwatch.StartNew();
            while (cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up) < 1 + procs.Count)
            {
                if (up.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("cluster did not form in 60 s");
                Thread.Sleep(100);
            }
            Thread.Sleep(1000); // workers register within a second of joining
            var spec = RunSpecFactory.From(o, runId, shardCount: 8, startWorkers: 1);
            var clock = Stopwatch.StartNew();
            coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20)).Wait();
            double prepare = double.NaN, first = double.NaN, last = double.NaN;
            long firstStep = 0, lastStep = 0;
            while (true)
            {
                var st = coordinator.Ask<RunStatus>(new GetRunStatus(runId), TimeSpan.FromSeconds(10)).Result;
                double t = clock.Elapsed.TotalSeconds;
                if (double.IsNaN(prepare) && st.Phase is not (RunPhase.Submitted or RunPhase.Preparing)) prepare = t;
                if (st.CommittedSteps > lastStep)
                {
                    if (double.IsNaN(first))
                    {
                        first = t; firstStep = st.CommittedSteps;
                        for (int i = 0; i < procs.Count; i++) cpuAtFirst[i] = CpuSeconds(procs[i]);
                        selfAtFirst = Process.GetCurrentProcess().TotalProcessorTime;
                    }
                    last = t; lastStep = st.CommittedSteps;
                }
                if (st.Phase is RunPhase.Completed) break;
                if (st.Phase is RunPhase.Failed or RunPhase.Stopped) throw new InvalidOperationException($"bench run {st.Phase}: {st.Detail}");
                if (clock.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException("bench run did not finish in 10 minutes");
                Thread.Sleep(5);
            }
            double step = lastStep > firstStep ? (last - first) / (lastStep - firstStep) : double.NaN;
            var cpu = new Dictionary<string, double>
            {
                ["coordinator"] = (Process.GetCurrentProcess().TotalProcessorTime - selfAtFirst).TotalSeconds / Math.Max(1, lastStep - firstStep),
            };
            for (int i = 0; i < procs.Count; i++)
                cpu[roles[i]] = cpu.GetValueOrDefault(roles[i]) + (CpuSeconds(procs[i]) - cpuAtFirst[i]) / Math.Max(1, lastStep - firstStep);
            double serve = lastStep > firstStep ? (lastStep - firstStep) * o.BatchSize / (last - first) : double.NaN;
            return (step, prepare, serve, cpu);
        }
        finally
        {
            // the nodes leave gracefully (SIGTERM), so nobody logs a broken association
            foreach (var p in procs) { using var kill = Process.Start("kill", $"-TERM {p.Id}"); kill.WaitForExit(); }
            foreach (var p in procs)
            {
                if (!p.WaitForExit(20_000)) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
                p.Dispose();
            }
            host.StopAsync().Wait();
        }
    }

    /// <summary>MB/s of planned batches of <paramref name="mib"/> MiB moved by the loader's window to a worker on another node.</summary>
    private static double Transfer(int mib, int batches)
    {
        int pa = LocalPorts.Next(), pb = LocalPorts.Next();
        var seeds = new[] { $"127.0.0.1:{pa}" };
        var a = new NodeOptions { Port = pa, Seeds = seeds, Roles = new[] { "coordinator", "worker" } }.Validate();
        var b = new NodeOptions { Port = pb, Seeds = seeds, Roles = new[] { "loader" } }.Validate();
        var noop = new NoopRunner();
        using var hostA = new HostBuilder().ConfigureServices(s => s.AddAkka(a.SystemName, (x, _) => x.AddHiggsNode(a).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.ErrorLevel).AddGpuWorker<CoordinatorKey>(noop))).Build();
        using var hostB = new HostBuilder().ConfigureServices(s => s.AddAkka(b.SystemName, (x, _) => x.AddHiggsNode(b).ConfigureLoggers(l => l.LogLevel = Akka.Event.LogLevel.ErrorLevel).AddDataLoader(new SyntheticBatches(batches, mib)))).Build();
        hostA.Start(); hostB.Start();
        try
        {
            var coordinator = hostA.Services.GetRequiredService<ActorRegistry>().Get<CoordinatorKey>();
            var spec = new RunSpec("transfer", new HiggsCluster.Planning.RunOptions { SaveSteps = 0, ValSteps = 0, Seed = 1, ValidationFraction = 0 }, 4);
            var cluster = Akka.Cluster.Cluster.Get(hostA.Services.GetRequiredService<ActorSystem>());
            while (cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up) < 2) Thread.Sleep(50);
            Thread.Sleep(1000);
            coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20)).Wait();
            var clock = Stopwatch.StartNew();
            long startAt = -1; double t0 = 0;
            while (true)
            {
                var st = coordinator.Ask<RunStatus>(new GetRunStatus("transfer"), TimeSpan.FromSeconds(10)).Result;
                if (startAt < 0 && st.CommittedSteps > 0) { startAt = st.CommittedSteps; t0 = clock.Elapsed.TotalSeconds; }
                if (st.Phase == RunPhase.Completed)
                    return (batches - startAt) * (double)mib * 1048576 / 1e6 / (clock.Elapsed.TotalSeconds - t0);
                if (st.Phase is RunPhase.Failed or RunPhase.Stopped) throw new InvalidOperationException($"transfer run {st.Phase}: {st.Detail}");
                Thread.Sleep(2);
            }
        }
        finally
        {
            hostB.StopAsync().Wait();
            hostA.StopAsync().Wait();
        }
    }

    private sealed class SyntheticBatches(int count, int mib) : IBatchBuilder
    {
        private readonly byte[] _payload = Enumerable.Range(0, mib * 1048576).Select(i => (byte)(i * 31)).ToArray();

        public ShardsPrepared Prepare(AssignShards a)
        {
            var ids = Enumerable.Range(0, count).Select(i => (long)i).Where(i => a.ShardIds.Contains((int)(i % a.ShardCount))).ToArray();
            return new ShardsPrepared(a.RunId, a.Generation, a.ShardIds, ids, ids, Array.Empty<string>());
        }

        public BatchDelivery Build(RunSpec spec, PlanMicroBatch p) => new(p.RunId, p.Generation, p.Epoch, p.Step, p.Rank, p.Micro, p.SampleIds,
            new[] { new NamedTensor("audio_features", new TensorData(TensorDType.Float32, new long[] { _payload.Length / 4 }, _payload)) });
    }

    /// <summary>A worker that takes batches and does no work: what is left is the data path and the protocol.</summary>
    private sealed class NoopRunner : IStepRunner
    {
        private readonly float[] _grad = new float[4];
        public void BeginRun(RunPlanned run) { }
        public double MicroStep(BatchDelivery batch, int world) => 0;
        public GradientBucketView GradientBucket(bool deviceMemory) => new(_grad, IntPtr.Zero, _grad.Length);
        public double[] StepStatistics() => new double[] { 1, 0 };
        public void OptimizerStep(long globalStep, double[] totals, bool lead) { }
        public ulong LoraChecksum() => 0;
        public void DiscardGradients() { }
        public string SaveCheckpoint(string runId, long globalStep, string tag, bool final, EarlyStoppingCounts? counts = null) => "none";
        public double Validate(string runId, long globalStep, EarlyStoppingCounts? counts = null) => double.NaN;
        public NamedTensor[] ExportState() => Array.Empty<NamedTensor>();
        public void ImportState(NamedTensor[] state) { }
    }

    /// <summary>utime + stime of a process from /proc (clock ticks of 1/100 s on Linux).</summary>
    private static double CpuSeconds(Process p)
    {
        var stat = File.ReadAllText($"/proc/{p.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    private static Process StartNode(string role, string seeds, int threads)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "higgs.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var x in new[] { dll, "node", "--role", role, "--port", LocalPorts.Next().ToString(), "--seeds", seeds, "--threads", threads.ToString(), "--remote-tls-cert", RemoteTlsOptions.Throwaway().Certificate })
            psi.ArgumentList.Add(x);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } l && l.Contains("rror")) Console.Error.WriteLine($"[{role}] {l}"); };
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        return p;
    }

}
