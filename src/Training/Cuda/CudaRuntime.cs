using System.Runtime.InteropServices;

namespace HiggsCluster.Training.Cuda;

/// <summary>
/// The few CUDA runtime calls the project makes itself (selecting a thread's device before NCCL binds a communicator
/// to it, reading free/total device memory), bound to the libcudart that the loaded libtorch uses. Its major version
/// follows libtorch's build (libcudart.so.12 for CUDA 12, .so.13 for CUDA 13 wheels), so no soname is fixed: a second,
/// different runtime in the process would keep its own notion of the current device and defeat the point.
/// </summary>
public static unsafe class CudaRuntime
{
    /// <summary>Sonames asked of the dynamic loader when nothing better is known, newest CUDA first.</summary>
    public static readonly IReadOnlyList<string> Sonames = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];

    // pip wheels keep the runtime outside torch/lib: site-packages/nvidia/cuda_runtime/lib (CUDA 12 wheels) or
    // site-packages/nvidia/cu13/lib (CUDA 13 wheels); the NuGet package and libtorch zips keep it next to libtorch
    private static readonly string[] SiblingDirs = [".", "../../nvidia/cuda_runtime/lib", "../../nvidia/cu13/lib"];

    private static readonly Lazy<Binding> Bound = new(Bind, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Every library to try, best first: a libcudart already mapped into the process (libtorch's CUDA build loaded
    /// it), then one next to <paramref name="libtorchCudaDir"/> (the folder of libtorch_cuda.so) or in a pip wheel's
    /// sibling layout, then the <see cref="Sonames"/>. Pure: the caller supplies /proc/self/maps and the file check.
    /// </summary>
    public static IReadOnlyList<string> Candidates(IEnumerable<string> mapsLines, Func<string, bool> fileExists, string? libtorchCudaDir)
    {
        var list = new List<string>();
        void Add(string p) { if (!list.Contains(p)) list.Add(p); }
        foreach (var path in MappedPaths(mapsLines))
            if (IsCudart(Path.GetFileName(path))) Add(path);
        if (!string.IsNullOrEmpty(libtorchCudaDir))
            foreach (var rel in SiblingDirs)
                foreach (var name in Sonames)
                {
                    var p = Path.GetFullPath(Path.Combine(libtorchCudaDir, rel, name));
                    if (fileExists(p)) Add(p);
                }
        foreach (var s in Sonames) Add(s);
        return list;
    }

    /// <summary>The path or soname to try first (see <see cref="Candidates"/>).</summary>
    public static string ChooseLibrary(IEnumerable<string> mapsLines, Func<string, bool> fileExists, string? libtorchCudaDir) =>
        Candidates(mapsLines, fileExists, libtorchCudaDir)[0];

    /// <summary>The folder of the libtorch_cuda.so mapped into the process, if any.</summary>
    public static string? MappedLibtorchCudaDir(IEnumerable<string> mapsLines) =>
        MappedPaths(mapsLines).Where(p => Path.GetFileName(p) == "libtorch_cuda.so").Select(Path.GetDirectoryName).FirstOrDefault();

    /// <summary>Whether a CUDA runtime was loaded (resolving it on first use); otherwise why not, naming what was tried.</summary>
    public static bool Available(out string reason)
    {
        var b = Bound.Value;
        reason = b.Reason;
        return b.Library is not null;
    }

    /// <summary>The path or soname of the runtime in use, or null when none loads (resolving it on first use).</summary>
    public static string? LoadedLibrary => Bound.Value.Library;

    /// <summary>cudaSetDevice on the calling thread.</summary>
    /// <exception cref="InvalidOperationException">No runtime loads, or CUDA refuses the device.</exception>
    public static void SetDevice(int index)
    {
        var b = Require($"cudaSetDevice({index})");
        Check(b, ((delegate* unmanaged<int, int>)b.SetDevice)(index), $"cudaSetDevice({index})");
    }

    /// <summary>Free and total bytes of <paramref name="device"/> (which becomes the calling thread's current device).</summary>
    /// <exception cref="InvalidOperationException">No runtime loads, or CUDA refuses the device or the query.</exception>
    public static (long Free, long Total) MemoryInfo(int device)
    {
        SetDevice(device);
        var b = Bound.Value;
        nuint free = 0, total = 0;
        Check(b, ((delegate* unmanaged<nuint*, nuint*, int>)b.MemGetInfo)(&free, &total), $"cudaMemGetInfo on cuda:{device}");
        return ((long)free, (long)total);
    }

    private static Binding Require(string what)
    {
        var b = Bound.Value;
        if (b.Library is null) throw new InvalidOperationException($"{what}: {b.Reason}");
        return b;
    }

    private static void Check(Binding b, int rc, string what)
    {
        if (rc == 0) return;
        string name = "";
        if (b.ErrorString != IntPtr.Zero)
            name = Marshal.PtrToStringUTF8(((delegate* unmanaged<int, IntPtr>)b.ErrorString)(rc)) is { } s ? $" ({s})" : "";
        throw new InvalidOperationException($"{what} failed with CUDA error {rc}{name} in {b.Library}");
    }

    // libtorch zips bundle the runtime under a hashed name (libcudart-1a2b3c4d.so.12); once mapped it is the one in use
    private static bool IsCudart(string fileName) =>
        fileName.StartsWith("libcudart.so", StringComparison.Ordinal) ||
        (fileName.StartsWith("libcudart-", StringComparison.Ordinal) && fileName.Contains(".so", StringComparison.Ordinal));

    /// <summary>File paths of /proc/self/maps lines, in order, without repeats (a library maps several segments).</summary>
    private static IEnumerable<string> MappedPaths(IEnumerable<string> mapsLines)
    {
        var seen = new HashSet<string>();
        foreach (var line in mapsLines)
        {
            // "addr perms offset dev inode    /path"; only the path holds a '/', and it may hold spaces
            int slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..].TrimEnd();
            if (path.EndsWith(" (deleted)", StringComparison.Ordinal)) path = path[..^" (deleted)".Length];
            if (seen.Add(path)) yield return path;
        }
    }

    private sealed record Binding(string? Library, string Reason, IntPtr SetDevice, IntPtr MemGetInfo, IntPtr ErrorString);

    private static Binding Bind()
    {
        string[] maps;
        try { maps = File.ReadAllLines("/proc/self/maps"); }
        catch (IOException) { maps = []; }
        catch (UnauthorizedAccessException) { maps = []; }
        var torchDir = MappedLibtorchCudaDir(maps) ?? LibtorchCudaDirNotYetLoaded();
        var tried = new List<string>();
        foreach (var candidate in Candidates(maps, File.Exists, torchDir))
        {
            if (!NativeLibrary.TryLoad(candidate, out var lib)) { tried.Add($"{candidate} (not loadable)"); continue; }
            if (!NativeLibrary.TryGetExport(lib, "cudaSetDevice", out var set) || !NativeLibrary.TryGetExport(lib, "cudaMemGetInfo", out var mem))
            {
                tried.Add($"{candidate} (no cudaSetDevice/cudaMemGetInfo)");
                continue;
            }
            NativeLibrary.TryGetExport(lib, "cudaGetErrorString", out var err);
            return new Binding(candidate, "", set, mem, err);
        }
        return new Binding(null, "no CUDA runtime could be loaded; tried " + string.Join(", ", tried), IntPtr.Zero, IntPtr.Zero, IntPtr.Zero);
    }

    /// <summary>
    /// Where libtorch_cuda.so will come from when torch has not loaded it yet: HIGGS_LIBTORCH_DIR (an existing PyTorch's
    /// torch/lib, put first on LD_LIBRARY_PATH by ./higgs), else the application folder (the NuGet natives).
    /// </summary>
    private static string? LibtorchCudaDirNotYetLoaded()
    {
        foreach (var dir in new[] { Environment.GetEnvironmentVariable("HIGGS_LIBTORCH_DIR"), AppContext.BaseDirectory })
            if (!string.IsNullOrEmpty(dir) && File.Exists(Path.Combine(dir, "libtorch_cuda.so"))) return dir;
        return null;
    }
}
