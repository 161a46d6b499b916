using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using TorchSharp;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>The non-tensor part of a training checkpoint (trainer_state.json).</summary>
public sealed record TrainerState
{
    /// <summary>The next global step to run (= optimizer steps taken, skipped ones included).</summary>
    public long NextStep { get; init; }
    public int Epoch { get; init; }
    public long TotalSteps { get; init; }
    /// <summary>Sample ids consumed by the finished steps, in order: the data cursor. The plan recomputes them from the seed; resume checks they agree.</summary>
    public IReadOnlyList<long> ConsumedSamples { get; init; } = Array.Empty<long>();
    public int NonFiniteInARow { get; init; }
    public double? BestValLoss { get; init; }
    public long? BestStep { get; init; }
    public int ValidationsWithoutImprovement { get; init; }
    public string RngState { get; init; } = "";
    public IReadOnlyList<KeyValuePair<string, string>> Config { get; init; } = Array.Empty<KeyValuePair<string, string>>();
}

/// <summary>
/// checkpoint-NNNNNNN/ = adapter (PEFT files) + optimizer.safetensors (AdamW moments and steps) + trainer_state.json
/// (step, epoch, schedule step, RNG, data cursor, resolved config). Written into a temporary sibling folder, every file
/// fsynced, then renamed into place (and the parent fsynced): a crash leaves either the old set or the new one.
/// trainer_state.json is written last and marks a complete checkpoint.
/// </summary>
public static class TrainerCheckpoint
{
    public const string Prefix = "checkpoint-";
    public const string StateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string BestFile = "best.txt";

    public static string NameFor(long step) => $"{Prefix}{step:D7}";

    /// <summary>Writes the files of a checkpoint into <paramref name="dir"/> (no atomicity; see <see cref="SaveAtomic"/>).</summary>
    public static void WriteFiles(string dir, LoraAdapter adapter, LoraAdamW optimizer, TrainerState state)
    {
        Directory.CreateDirectory(dir);
        adapter.Save(dir);
        optimizer.Save(Path.Combine(dir, OptimizerFile));
        File.WriteAllBytes(Path.Combine(dir, StateFile), TrainerBook.Serialize(state));
    }

    /// <summary>Atomic save under <paramref name="root"/>; <paramref name="beforeRename"/> lets tests simulate a crash.</summary>
    public static string SaveAtomic(string root, LoraAdapter adapter, LoraAdamW optimizer, TrainerState state, Action<string>? beforeRename = null)
    {
        Directory.CreateDirectory(root);
        var final = Path.Combine(root, NameFor(state.NextStep));
        var tmp = Path.Combine(root, $".tmp-{NameFor(state.NextStep)}-{Guid.NewGuid():N}");
        WriteFiles(tmp, adapter, optimizer, state);
        foreach (var f in Directory.GetFiles(tmp)) FsyncFile(f);
        FsyncDir(tmp);
        beforeRename?.Invoke(tmp);
        if (Directory.Exists(final))
        {
            // same step saved again (e.g. final save right after a periodic one): move the old one aside first
            var old = final + $".old-{Guid.NewGuid():N}";
            Directory.Move(final, old);
            Directory.Move(tmp, final);
            Directory.Delete(old, recursive: true);
        }
        else Directory.Move(tmp, final);
        FsyncDir(root);
        return final;
    }

    /// <summary>Complete checkpoints under <paramref name="root"/>, oldest first.</summary>
    public static List<(long Step, string Dir)> List(string root)
    {
        if (!Directory.Exists(root)) return new();
        return Directory.GetDirectories(root, Prefix + "*")
            .Select(d => (Name: Path.GetFileName(d), Dir: d))
            .Where(x => long.TryParse(x.Name[Prefix.Length..], out _) && File.Exists(Path.Combine(x.Dir, StateFile)))
            .Select(x => (long.Parse(x.Name[Prefix.Length..]), x.Dir)).OrderBy(x => x.Item1).ToList();
    }

    /// <summary>"latest" = newest complete checkpoint under the run's checkpoints folder; else a checkpoint folder.</summary>
    public static string Resolve(string root, string spec)
    {
        if (spec == "latest")
        {
            var all = List(root);
            if (all.Count == 0) throw new TrainConfigException("--resume", $"no complete checkpoint under {root}");
            return all[^1].Dir;
        }
        if (!File.Exists(Path.Combine(spec, StateFile))) throw new TrainConfigException("--resume", $"{spec} is not a complete checkpoint (no {StateFile})");
        return spec;
    }

    public static TrainerState Load(string dir, LoraAdapter adapter, LoraAdamW optimizer)
    {
        var state = ReadState(dir);
        LoadTensors(dir, adapter, optimizer);
        return state;
    }

    /// <summary>trainer_state.json of a checkpoint (the schema a hand-over carries too).</summary>
    public static TrainerState ReadState(string dir) => TrainerBook.Deserialize(File.ReadAllBytes(Path.Combine(dir, StateFile)), $"{dir}/{StateFile}");

    /// <summary>The adapter and AdamW state of a checkpoint, refused whole when any value is NaN or Inf.</summary>
    public static void LoadTensors(string dir, LoraAdapter adapter, LoraAdamW optimizer)
    {
        // checked before anything is copied: a refused checkpoint leaves the adapter and optimizer as they were
        RequireFinite(dir);
        adapter.LoadWeights(Path.Combine(dir, LoraAdapter.WeightsFile));
        optimizer.Load(Path.Combine(dir, OptimizerFile));
    }

    /// <summary>
    /// Refuses a checkpoint whose adapter or AdamW state holds a NaN or Inf: resuming from it would train (and validate,
    /// and save) a NaN adapter while the watchdog skips every step, so the run would look healthy and produce nothing.
    /// </summary>
    public static void RequireFinite(string dir)
    {
        foreach (var file in new[] { LoraAdapter.WeightsFile, OptimizerFile })
        {
            var path = Path.Combine(dir, file);
            if (!File.Exists(path)) continue; // a missing file is reported by the loader, with its own message
            using var f = new SafetensorsFile(path);
            foreach (var name in f.Names) RequireFinite(dir, f, name);
        }
    }

    private static void RequireFinite(string dir, SafetensorsFile f, string name)
    {
        using var scope = NewDisposeScope();
        var t = f.Load(name);
        if (t.is_floating_point() && !isfinite(t).all().item<bool>())
            throw new InvalidDataException($"{dir}: {name} holds NaN or Inf values: the checkpoint cannot be resumed (take an earlier one)");
    }

    /// <summary>Keeps the newest <paramref name="keepLast"/> and the best; removes stale temporary folders.</summary>
    public static void Prune(string root, int keepLast, long? bestStep)
    {
        var all = List(root);
        foreach (var (step, dir) in all.Take(Math.Max(0, all.Count - keepLast)))
            if (step != bestStep) Directory.Delete(dir, recursive: true);
        foreach (var tmp in Directory.GetDirectories(root, ".tmp-*")) Directory.Delete(tmp, recursive: true);
    }

    public static string CaptureRng()
    {
        using var t = torch.random.get_rng_state();
        return Convert.ToBase64String(t.data<byte>().ToArray());
    }

    public static void RestoreRng(string state)
    {
        if (string.IsNullOrEmpty(state)) return;
        using var t = torch.tensor(Convert.FromBase64String(state), ScalarType.Byte);
        torch.random.set_rng_state(t);
    }

    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);

    private static void FsyncFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    private static void FsyncDir(string path)
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = open(path, 0); // O_RDONLY
        if (fd < 0) return;
        try { fsync(fd); } finally { close(fd); }
    }
}
