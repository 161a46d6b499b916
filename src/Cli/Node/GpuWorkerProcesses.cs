using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// One worker <i>process</i> per GPU of this machine, as <c>torchrun --nproc_per_node</c> starts them: each child is a
/// <c>higgs node --role worker</c> with <c>CUDA_VISIBLE_DEVICES</c> set to its GPU, so it has its own CUDA context and
/// sees its GPU as cuda:0. Children get increasing ports of equal width, and the coordinator orders workers by their
/// address, so worker ranks follow the GPU order. Output goes to one log file per child.
/// </summary>
public sealed class GpuWorkerProcesses : IDisposable
{
    public sealed record Child(int Index, string Gpu, int Port, string LogPath, ProcessStartInfo StartInfo);

    private readonly List<(Child Child, Process Proc, StreamWriter Log)> _running = new();

    public IReadOnlyList<Child> Children => _running.Select(r => r.Child).ToList();

    /// <summary>
    /// The children to start (pure: tests check variables, ports and arguments without starting anything).
    /// <paramref name="nodeArgs"/> are the node options every child shares (seeds, host, TLS …).
    /// </summary>
    public static IReadOnlyList<Child> Plan(IReadOnlyList<string> gpus, IReadOnlyList<int> ports, IReadOnlyList<string> nodeArgs, string logDir,
        string dotnet, string higgsDll)
    {
        if (ports.Count != gpus.Count) throw new ArgumentException("one port per GPU");
        var sorted = ports.Order().ToList();
        if (sorted.Select(p => p.ToString().Length).Distinct().Count() > 1)
            throw new ArgumentException("worker ports must have the same number of digits (ranks follow the address order)");
        return gpus.Select((gpu, i) =>
        {
            var psi = new ProcessStartInfo(dotnet) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(higgsDll);
            foreach (var a in new[] { "node", "--role", "worker", "--port", sorted[i].ToString(), "--cmd-port", "off" }.Concat(nodeArgs)) psi.ArgumentList.Add(a);
            psi.Environment["CUDA_VISIBLE_DEVICES"] = gpu;
            // one GPU each: the injected device list of tests must not leak into the children's own view
            psi.Environment.Remove("HIGGS_GPU_LIST");
            return new Child(i, gpu, sorted[i], Path.Combine(logDir, $"worker-gpu{gpu}.log"), psi);
        }).ToList();
    }

    public static GpuWorkerProcesses Start(IReadOnlyList<Child> plan)
    {
        var w = new GpuWorkerProcesses();
        try
        {
            foreach (var c in plan)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(c.LogPath)!);
                var log = new StreamWriter(c.LogPath, append: false) { AutoFlush = true };
                var p = Process.Start(c.StartInfo) ?? throw new InvalidOperationException($"worker process for GPU {c.Gpu} did not start");
                p.OutputDataReceived += (_, e) => Append(log, e.Data);
                p.ErrorDataReceived += (_, e) => Append(log, e.Data);
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                w._running.Add((c, p, log));
            }
        }
        catch { w.Dispose(); throw; }
        return w;
    }

    // a line may arrive after the log was closed (the child is being killed): it is dropped, never thrown on a pool thread
    private static void Append(StreamWriter log, string? line)
    {
        if (line is null) return;
        try { lock (log) log.WriteLine(line); }
        catch (ObjectDisposedException) { }
    }

    /// <summary>The children that have exited, with their exit codes.</summary>
    public IReadOnlyList<(Child Child, int ExitCode)> Exited() =>
        _running.Where(r => r.Proc.HasExited).Select(r => (r.Child, r.Proc.ExitCode)).ToList();

    /// <summary>The last lines of a child's log (for an error message).</summary>
    public static string Tail(Child c, int lines = 8)
    {
        try { return string.Join("\n", File.ReadLines(c.LogPath).TakeLast(lines)); }
        catch (IOException) { return ""; }
    }

    /// <summary>The command that runs this tool again: the same dotnet host and higgs.dll as this process.</summary>
    public static (string Dotnet, string HiggsDll) Self()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "higgs.dll");
        if (!File.Exists(dll)) dll = typeof(GpuWorkerProcesses).Assembly.Location;
        var host = Environment.ProcessPath;
        var dotnet = host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        return (dotnet, dll);
    }

    /// <summary>Asks every child to leave the cluster (SIGTERM), waits a little, then kills what is left.</summary>
    public void Stop(TimeSpan grace)
    {
        foreach (var (_, p, _) in _running)
            if (!p.HasExited) _ = Kill(p.Id, 15);
        var until = DateTime.UtcNow + grace;
        foreach (var (_, p, _) in _running)
        {
            var left = until - DateTime.UtcNow;
            if (left > TimeSpan.Zero) p.WaitForExit(left);
        }
        Dispose();
    }

    public void Dispose()
    {
        foreach (var (_, p, log) in _running)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.WaitForExit(5000); } catch (InvalidOperationException) { }
            p.Dispose();
            lock (log) log.Dispose();
        }
        _running.Clear();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
