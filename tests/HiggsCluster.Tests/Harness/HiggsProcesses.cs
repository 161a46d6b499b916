using System.Collections.Concurrent;
using System.Diagnostics;
using HiggsCluster.Tests.Cluster;
using Xunit;

namespace HiggsCluster.Tests.Harness;

/// <summary>
/// The one harness for tests that run the real <c>higgs</c> tool: long-lived processes (nodes) with their output kept
/// per name, and one-shot verbs run to their exit. Every process is killed (whole tree) when the harness is disposed.
/// Output is plain lines (CI=1), never a live terminal view.
/// </summary>
internal sealed class HiggsProcesses : IDisposable
{
    private readonly List<(Process Proc, string Name)> _procs = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _out = new();

    /// <summary>
    /// Environment every process of this harness gets (a null value removes a variable). Membership is closed by default,
    /// so every node holds a certificate of the test cluster CA unless a test replaces or removes it.
    /// </summary>
    /// <remarks>
    /// Nodes here keep the product's heartbeat pause (10 s). A 20 s pause was meant to be set here once but its variable
    /// was misspelt; once spelt right, the worker restarted on the same port was downed in its first slow-lane run,
    /// where it had passed at 10 s: a longer pause keeps the dead incarnation a member longer. Tests about detection pass
    /// --heartbeat-pause.
    /// </remarks>
    public Dictionary<string, string?> Environment { get; } = new()
    {
        ["CI"] = "1", [TestClusterCerts.EnvVar] = TestClusterCerts.NodePfx,
    };
    /// <summary>Working directory of every process (null: the test's).</summary>
    public string? WorkingDirectory { get; init; }

    public static string Dll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "higgs.dll");
            Assert.True(File.Exists(dll), $"{dll} missing: the test project must reference src/Cli");
            return dll;
        }
    }

    private ProcessStartInfo Psi(IReadOnlyDictionary<string, string?> env, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (WorkingDirectory is not null) psi.WorkingDirectory = WorkingDirectory;
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Environment.Concat(env)) { if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v; }
        return psi;
    }

    public Process Start(string name, params string[] args) => Start(name, new Dictionary<string, string?>(), args);

    /// <summary>A node (or any long-running verb) with extra environment variables; its lines are kept under <paramref name="name"/> (stderr prefixed "ERR ").</summary>
    public Process Start(string name, IReadOnlyDictionary<string, string?> env, params string[] args)
    {
        var p = Process.Start(Psi(env, args))!;
        lock (_procs) _procs.Add((p, name));
        var q = _out.GetOrAdd(name, _ => new ConcurrentQueue<string>());
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) q.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) q.Enqueue("ERR " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Runs one verb to its exit: exit code, stdout, stderr and wall time; killed and failed after <paramref name="timeoutSeconds"/>.</summary>
    public async Task<(int Code, string Out, string Err, double Seconds)> Run(IReadOnlyDictionary<string, string?>? env, double timeoutSeconds, params string[] args)
    {
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(Psi(env ?? new Dictionary<string, string?>(), args))!;
        lock (_procs) _procs.Add((p, "run " + string.Join(' ', args.Take(2))));
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            Assert.Fail($"higgs {string.Join(' ', args)} did not exit within {timeoutSeconds} s; stderr so far:\n{(e.IsCompleted ? await e : "")}");
        }
        return (p.ExitCode, await o, await e, sw.Elapsed.TotalSeconds);
    }

    public Task<(int Code, string Out, string Err, double Seconds)> Run(params string[] args) => Run(null, 240, args);

    public Process Get(string name) { lock (_procs) return _procs.Last(p => p.Name == name).Proc; }

    public IEnumerable<string> Lines(string name) => _out.TryGetValue(name, out var q) ? q : Enumerable.Empty<string>();

    /// <summary>Polls until <paramref name="ok"/>; fails naming <paramref name="what"/> with every process's log tail.</summary>
    public async Task Until(Func<bool> ok, TimeSpan within, string what, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + within;
        while (!ok())
        {
            Assert.True(DateTime.UtcNow < deadline, $"not within {within.TotalSeconds:0} s: {what}\n{Tails()}");
            await Task.Delay(100, ct);
        }
    }

    public string Tails(int lines = 12)
    {
        lock (_procs)
            return string.Join("\n----\n", _procs.Where(p => _out.ContainsKey(p.Name)).Select(p =>
                $"[{p.Name}{(p.Proc.HasExited ? $", exited {p.Proc.ExitCode}" : "")}]\n" + string.Join("\n", Lines(p.Name).TakeLast(lines))));
    }

    /// <summary>Fails when a node exited, except the named ones (killed on purpose).</summary>
    public void AssertAlive(params string[] except)
    {
        lock (_procs)
            foreach (var (p, name) in _procs.Where(p => _out.ContainsKey(p.Name)))
                if (p.HasExited && !except.Contains(name)) Assert.Fail($"node {name} exited early ({p.ExitCode}):\n{Tails()}");
    }

    /// <summary>When set, every node's whole output is written there at the end (a folder per harness): for reading a failure.</summary>
    public const string LogsEnvVar = "HIGGS_TEST_NODE_LOGS";

    public void Dispose()
    {
        lock (_procs)
        {
            foreach (var (p, _) in _procs)
            {
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.Dispose();
            }
            if (System.Environment.GetEnvironmentVariable(LogsEnvVar) is { Length: > 0 } root)
            {
                var dir = Path.Combine(root, DateTime.UtcNow.ToString("HHmmss") + "-" + Guid.NewGuid().ToString("N")[..6]);
                Directory.CreateDirectory(dir);
                foreach (var (name, lines) in _out) File.WriteAllLines(Path.Combine(dir, name + ".log"), lines.ToArray());
            }
        }
    }
}
