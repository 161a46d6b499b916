using System.Diagnostics;
using System.Globalization;

namespace HiggsCluster.Training.Cuda;

/// <summary>
/// Which GPUs of this machine get a worker process each (<c>--gpus all|N|0,3,5</c>, <c>train.devices</c>), as
/// <c>torchrun --nproc_per_node</c> does. Indices count the GPUs this process may use, in the order CUDA numbers them
/// (the entries of <c>CUDA_VISIBLE_DEVICES</c> when it is set, else every GPU <c>nvidia-smi</c> lists).
/// </summary>
public sealed record GpuSelection(bool All, int? Count, IReadOnlyList<int>? Indices)
{
    /// <summary>Parses the text of the option; a <see cref="FormatException"/> says what is wrong with it.</summary>
    public static GpuSelection Parse(string text)
    {
        var t = text.Trim();
        if (t == "all") return new(true, null, null);
        if (!t.Contains(',') && int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return n > 0 ? new(false, n, null) : throw new FormatException($"'{text}' asks for no GPU: give all, a count of at least 1 or a list like 0,3,5");
        var parts = t.Split(',', StringSplitOptions.TrimEntries);
        var list = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var i))
                throw new FormatException($"'{text}' is not all, a count or a list of GPU indices like 0,3,5");
            if (list.Contains(i))
                throw new FormatException($"GPU {i} is listed twice: two workers never share one GPU (NCCL refuses two ranks on one device, and both would run out of its memory)");
            list.Add(i);
        }
        return new(false, null, list);
    }

    /// <summary>
    /// The <c>CUDA_VISIBLE_DEVICES</c> value of each worker process, in rank order, from the GPUs this machine has
    /// (<paramref name="visible"/>, as <see cref="Visible"/> lists them). Asking for more than there are is refused.
    /// </summary>
    public IReadOnlyList<string> Pick(IReadOnlyList<string> visible)
    {
        if (visible.Count == 0)
            throw new FormatException("no GPU on this machine (nvidia-smi lists none; CUDA_VISIBLE_DEVICES may hide them)");
        string have = $"this machine has {visible.Count} GPU(s): {string.Join(",", Enumerable.Range(0, visible.Count))}";
        if (All) return visible;
        if (Count is { } n)
            return n <= visible.Count ? visible.Take(n).ToList() : throw new FormatException($"{n} GPUs asked, {have}");
        foreach (var i in Indices!)
            if (i >= visible.Count) throw new FormatException($"GPU {i} asked, {have}");
        return Indices!.Select(i => visible[i]).ToList();
    }

    /// <summary>
    /// The GPUs this process may use: <c>HIGGS_GPU_LIST</c> (comma list; set it where nvidia-smi is absent, and tests
    /// inject devices with it), else the entries of <c>CUDA_VISIBLE_DEVICES</c>, else the indices nvidia-smi lists.
    /// </summary>
    public static IReadOnlyList<string> Visible(Func<string, string?>? env = null, Func<IReadOnlyList<string>>? nvidiaSmi = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        static IReadOnlyList<string> Split(string v) => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (env("HIGGS_GPU_LIST") is { } injected) return Split(injected);
        if (env("CUDA_VISIBLE_DEVICES") is { } cvd) return Split(cvd).TakeWhile(e => e != "-1").ToList();
        return (nvidiaSmi ?? NvidiaSmiIndices)();
    }

    /// <summary>True when the device list comes from <c>HIGGS_GPU_LIST</c> (no CUDA needed behind it).</summary>
    public static bool Injected(Func<string, string?>? env = null) => (env ?? Environment.GetEnvironmentVariable)("HIGGS_GPU_LIST") is not null;

    private static IReadOnlyList<string> NvidiaSmiIndices()
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", "--query-gpu=index --format=csv,noheader") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(10_000) || p.ExitCode != 0) return Array.Empty<string>();
            return text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        }
        catch (System.ComponentModel.Win32Exception) { return Array.Empty<string>(); }
    }
}
