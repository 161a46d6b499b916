using System.Diagnostics;
using System.Globalization;
using HiggsCluster.Training;

namespace HiggsCluster.Bench;

/// <summary>
/// Runs bench/peer/higgs_peer.py in its synthetic mode on the same device and shapes as `higgs-bench gpu` (PyTorch's
/// own random weights and batch: speed and memory are compared, not losses) and echoes its output.
/// </summary>
internal static class GpuBenchPeer
{
    public sealed record Result(double? TokensPerS);

    public static Result Run(GpuBenchOptions o, double peakTflops, int seq)
    {
        if (o.Peer == "0") return new Result(null);
        var script = RepoPaths.FindRoot() is { } root ? Path.Combine(root, "bench", "peer", "higgs_peer.py") : null;
        if (script is null || !File.Exists(script))
        {
            Console.WriteLine("RESULT peer_gpu not measured: bench/peer/higgs_peer.py not found (run from the repository's checkout)");
            return new Result(null);
        }
        var args = Arguments(o, peakTflops, seq);
        string python = o.Peer == "auto" ? "python3" : o.Peer;
        Console.WriteLine($"gpu: PyTorch peer: {python} bench/peer/higgs_peer.py {string.Join(" ", args)}");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        foreach (var x in args) psi.ArgumentList.Add(x);
        Process? p;
        try { p = Process.Start(psi); }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.WriteLine($"RESULT peer_gpu not measured: cannot start {python}: {e.Message}");
            return new Result(null);
        }
        if (p is null) return new Result(null);
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(o.PeerTimeoutS * 1000))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
                Console.WriteLine($"RESULT peer_gpu not measured: the peer ran past --peer-timeout {o.PeerTimeoutS} s");
                return new Result(null);
            }
            var lines = (stdout.Result + stderr.Result).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var l in lines.TakeLast(40))
                Console.WriteLine(l.StartsWith("RESULT", StringComparison.Ordinal) || l.StartsWith("peer:", StringComparison.Ordinal) ? l : "peer: " + l);
            if (p.ExitCode != 0) Console.WriteLine($"RESULT peer_gpu not measured: the peer exited with {p.ExitCode}");
            return new Result(p.ExitCode == 0 ? Median(lines, "peer_gpu_tokens_per_s") : null);
        }
    }

    /// <summary>The peer's command line for these options: every shape and training choice passed explicitly.</summary>
    public static List<string> Arguments(GpuBenchOptions o, double peakTflops, int seq)
    {
        var inv = CultureInfo.InvariantCulture;
        var args = new List<string>
        {
            "--synthetic", "--shapes", o.Shapes, "--device", o.Device, "--batch", o.Batch.ToString(inv), "--seq", seq.ToString(inv),
            "--steps", o.Steps.ToString(inv), "--warmup", o.Warmup.ToString(inv), "--grad-checkpointing", o.GradCheckpointing ? "1" : "0",
            "--lora-r", o.LoraR.ToString(inv), "--lora-targets", string.Join(",", o.LoraTargets), "--peak-tflops", peakTflops.ToString(inv),
        };
        if (o.Shapes == "small") args.AddRange(new[] { "--hidden", o.Hidden.ToString(inv), "--layers", o.Layers.ToString(inv) });
        return args;
    }

    private static double? Median(IEnumerable<string> lines, string name)
    {
        var line = lines.FirstOrDefault(l => l.StartsWith($"RESULT {name} median=", StringComparison.Ordinal));
        var field = line?.Split(' ').FirstOrDefault(f => f.StartsWith("median=", StringComparison.Ordinal));
        return field is not null && double.TryParse(field["median=".Length..], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
    }
}
