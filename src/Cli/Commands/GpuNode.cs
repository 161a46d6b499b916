using HiggsCluster.Cli.Grammar;
using System.Runtime.InteropServices;
using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Cuda;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs node --role worker[,…] --gpus all|N|0,3,5 --port P [--log-dir D] …`: one worker process per GPU of this machine (ports
/// P, P+1, … in GPU order; P+1, … when this process also hosts the node's other roles on P), each with its own
/// <c>CUDA_VISIBLE_DEVICES</c> and the node's other settings. This process runs the other roles, if any, and stops the
/// workers (a graceful leave) when it is stopped.
/// </summary>
public static class GpuNode
{
    // settings of this process's own node and command host that a worker child must not copy
    private static readonly HashSet<string> NotForChildren = new(StringComparer.Ordinal)
    {
        "role", "port", "gpus", "log-dir", "cmd-port", "cmd-host", "cmd-token-file", "cmd-tls-cert", "cmd-tls-key", "cmd-max-request", "journal", "resume-wait",
    };

    public static int Run(CliArgs args, NodeOptions options, string selection, TextWriter stdout, TextWriter stderr)
    {
        if (!options.Roles.Contains("worker")) throw new CliUsageException("--gpus starts worker processes: give --role worker (with any other roles)");
        GpuSelection sel;
        try { sel = GpuSelection.Parse(selection); }
        catch (FormatException e) { throw new CliUsageException($"--gpus: {e.Message}"); }
        if (!GpuSelection.Injected() && TorchDevices.BuildBackend != "cuda" && TorchDevices.VisibleCudaDevices() == 0)
            throw new CliUsageException("--gpus needs a CUDA build of higgs: run with HIGGS_TORCH_BACKEND=cuda (./higgs rebuilds)");
        IReadOnlyList<string> gpus;
        try { gpus = sel.Pick(GpuSelection.Visible()); }
        catch (FormatException e) { throw new CliUsageException($"--gpus {selection}: {e.Message}"); }

        var others = options.Roles.Where(r => r != "worker").ToArray();
        int first = others.Length > 0 ? options.Port + 1 : options.Port;
        if (options.Port == 0) throw new CliUsageException("--gpus needs a fixed --port: the workers take the ports after it");
        var ports = Enumerable.Range(first, gpus.Count).ToList();
        if (ports[^1] > 65535) throw new CliUsageException($"--port {options.Port}: {gpus.Count} workers need ports up to {ports[^1]}");
        var childArgs = args.Keys.Where(k => !NotForChildren.Contains(k)).SelectMany(k => args.All(k).Select(v => $"--{k}={v}")).ToList();
        var (dotnet, dll) = GpuWorkerProcesses.Self();
        IReadOnlyList<GpuWorkerProcesses.Child> plan;
        try { plan = GpuWorkerProcesses.Plan(gpus, ports, childArgs, Path.GetFullPath(args.Get("log-dir") ?? "logs"), dotnet, dll); }
        catch (ArgumentException e) { throw new CliUsageException($"--port {options.Port}: {e.Message}"); }
        foreach (var c in plan) stderr.WriteLine($"higgs node: worker process for GPU {c.Gpu} on port {c.Port} (CUDA_VISIBLE_DEVICES={c.Gpu}), log {c.LogPath}");
        using var children = GpuWorkerProcesses.Start(plan);
        if (others.Length > 0)
        {
            try { return NodeCommand.RunHost(options with { Roles = others }, stdout, stderr); }
            finally { children.Stop(TimeSpan.FromSeconds(15)); }
        }
        using var stop = new ManualResetEventSlim();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
        while (!stop.Wait(500))
            if (children.Exited().Count == plan.Count) break;
        children.Stop(TimeSpan.FromSeconds(15));
        return 0;
    }
}
