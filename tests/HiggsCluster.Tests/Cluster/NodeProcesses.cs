using System.Collections.Concurrent;
using System.Diagnostics;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>Real <c>higgs node</c> processes on 127.0.0.1 with their output captured; killed when disposed.</summary>
internal sealed class NodeProcesses : IDisposable
{
    private readonly List<(Process Proc, string Name)> _procs = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _out = new();

    public Process Start(string name, params string[] args) => Start(name, new Dictionary<string, string?>(), args);

    /// <summary>A node (or any higgs verb) with extra environment variables (a null value removes one).</summary>
    public Process Start(string name, IReadOnlyDictionary<string, string?> env, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "higgs.dll");
        Assert.True(File.Exists(dll), $"{dll} missing: the test project must reference src/Cli");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        // membership is closed by default: every node of a test cluster has a certificate of the test CA
        psi.Environment[TestClusterCerts.EnvVar] = TestClusterCerts.NodePfx;
        foreach (var (k, v) in env) { if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v; }
        var p = Process.Start(psi)!;
        _procs.Add((p, name));
        var q = _out.GetOrAdd(name, _ => new ConcurrentQueue<string>());
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) q.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) q.Enqueue("ERR " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    public Process Get(string name) => _procs.Last(p => p.Name == name).Proc;

    public IEnumerable<string> Lines(string name) => _out.TryGetValue(name, out var q) ? q : Enumerable.Empty<string>();

    public string Tails(int lines = 12) => string.Join("\n----\n", _procs.Select(p =>
        $"[{p.Name}{(p.Proc.HasExited ? $", exited {p.Proc.ExitCode}" : "")}]\n" + string.Join("\n", Lines(p.Name).TakeLast(lines))));

    /// <summary>Fails when a node exited, except the named ones (killed on purpose).</summary>
    public void AssertAlive(params string[] except)
    {
        foreach (var (p, name) in _procs)
            if (p.HasExited && !except.Contains(name)) Assert.Fail($"node {name} exited early ({p.ExitCode}):\n{Tails()}");
    }

    public void Dispose()
    {
        foreach (var (p, _) in _procs)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.Dispose();
        }
    }
}
