using HiggsCluster.Training.Cuda;
using Xunit;

namespace HiggsCluster.Tests.Device;

/// <summary>
/// Which libcudart the project binds: the one libtorch already loaded, else one beside libtorch_cuda.so, else by soname,
/// newest CUDA first. The choice is pure (maps lines and a file check in); the binding itself is checked on this machine.
/// </summary>
[Trait("Category", "Device")]
public class CudaRuntimeTests
{
    private static string Maps(string path) => $"7f3a1c000000-7f3a1c200000 r-xp 00000000 103:02 4211        {path}";

    private static readonly string[] Unrelated =
    [
        "55d0c0a00000-55d0c0a21000 r--p 00000000 103:02 1311        /usr/share/dotnet/dotnet",
        "7f3a10000000-7f3a10021000 rw-p 00000000 00:00 0 ",
        "7ffd5a1f0000-7ffd5a211000 rw-p 00000000 00:00 0                          [stack]",
        Maps("/opt/app/libtorch_cuda.so"),
    ];

    private static bool Nothing(string _) => false;

    [Fact]
    public void A_mapped_cuda_13_runtime_is_chosen_over_everything_else()
    {
        var path = "/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcudart.so.13";
        var maps = Unrelated.Append(Maps(path)).Append(Maps(path));
        Assert.Equal(path, CudaRuntime.ChooseLibrary(maps, _ => true, "/opt/app"));
        // the same library mapped twice (several segments) is one candidate; the sonames still follow as fall-backs
        var all = CudaRuntime.Candidates(maps, Nothing, null);
        Assert.Equal([path, .. CudaRuntime.Sonames], all);
    }

    [Fact]
    public void A_mapped_cuda_12_runtime_is_chosen_even_when_a_13_exists_on_disk()
    {
        var path = "/opt/app/libcudart.so.12";
        Assert.Equal(path, CudaRuntime.ChooseLibrary(Unrelated.Append(Maps(path)), _ => true, "/opt/app"));
    }

    [Fact]
    public void A_hashed_runtime_bundled_with_libtorch_counts_as_mapped_but_other_cuda_libraries_do_not()
    {
        var hashed = "/opt/libtorch/lib/libcudart-9335f6a2.so.12";
        Assert.Equal(hashed, CudaRuntime.ChooseLibrary([Maps(hashed)], Nothing, null));
        Assert.Equal("libcudart.so.13", CudaRuntime.ChooseLibrary([Maps("/opt/cuda/lib/libcudnn.so.9"), Maps("/opt/cuda/lib/libcudart_static.a")], Nothing, null));
    }

    [Fact]
    public void A_mapped_path_that_was_deleted_or_holds_spaces_is_read_whole()
    {
        var path = "/srv/my models/libcudart.so.12";
        Assert.Equal(path, CudaRuntime.ChooseLibrary([Maps(path + " (deleted)")], Nothing, null));
    }

    [Fact]
    public void Without_a_mapped_runtime_a_pip_wheels_sibling_runtime_is_chosen()
    {
        var torchLib = "/venv/lib/python3.12/site-packages/torch/lib";
        var sibling = "/venv/lib/python3.12/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12";
        Assert.Equal(sibling, CudaRuntime.ChooseLibrary(Unrelated, p => p == sibling, torchLib));
    }

    [Fact]
    public void Without_a_mapped_runtime_one_next_to_libtorch_cuda_comes_before_the_wheel_layout()
    {
        var torchLib = "/opt/torch/lib";
        var beside = "/opt/torch/lib/libcudart.so.12";
        var sibling = "/opt/nvidia/cuda_runtime/lib/libcudart.so.12";
        var all = CudaRuntime.Candidates(Unrelated, p => p == beside || p == sibling, torchLib);
        Assert.Equal([beside, sibling, .. CudaRuntime.Sonames], all);
    }

    [Fact]
    public void With_nothing_known_the_sonames_are_tried_newest_cuda_first()
    {
        Assert.Equal(["libcudart.so.13", "libcudart.so.12", "libcudart.so"], CudaRuntime.Candidates(Unrelated, Nothing, "/opt/app"));
        Assert.Equal("libcudart.so.13", CudaRuntime.ChooseLibrary([], Nothing, null));
    }

    [Fact]
    public void The_libtorch_cuda_folder_is_read_from_the_maps()
    {
        Assert.Equal("/opt/app", CudaRuntime.MappedLibtorchCudaDir(Unrelated));
        Assert.Null(CudaRuntime.MappedLibtorchCudaDir(Unrelated.Where(l => !l.Contains("libtorch_cuda"))));
    }

    /// <summary>
    /// On a machine with no CUDA runtime (the CPU development machines) nothing binds and every call says what it
    /// tried; where a runtime loads, it is a libcudart and the calls reach it.
    /// </summary>
    [Fact]
    public void Available_says_which_runtime_it_bound_or_every_library_it_tried()
    {
        bool ok = CudaRuntime.Available(out var reason);
        Assert.Equal(ok, CudaRuntime.LoadedLibrary is not null);
        if (!ok)
        {
            foreach (var soname in CudaRuntime.Sonames) Assert.Contains(soname + " (", reason);
            var set = Assert.Throws<InvalidOperationException>(() => CudaRuntime.SetDevice(1));
            Assert.Contains("cudaSetDevice(1)", set.Message);
            Assert.Contains("libcudart.so.12", set.Message);
            Assert.Throws<InvalidOperationException>(() => CudaRuntime.MemoryInfo(0));
        }
        else
        {
            Assert.Equal("", reason);
            Assert.StartsWith("libcudart", Path.GetFileName(CudaRuntime.LoadedLibrary));
            // no device has this index: CUDA's refusal comes back as an exception naming the call and the library
            var bad = Assert.Throws<InvalidOperationException>(() => CudaRuntime.SetDevice(4096));
            Assert.Contains(CudaRuntime.LoadedLibrary!, bad.Message);
        }
    }

    [Fact]
    public void On_a_machine_without_nvidia_devices_no_runtime_is_available()
    {
        Assert.SkipWhen(File.Exists("/dev/nvidiactl"), "this machine has an NVIDIA driver");
        Assert.SkipWhen(CudaRuntime.Sonames.Any(s => ProbeLoads(s)), "a CUDA runtime is installed without a GPU");
        Assert.False(CudaRuntime.Available(out var reason));
        Assert.StartsWith("no CUDA runtime could be loaded; tried libcudart.so.13", reason);
    }

    private static bool ProbeLoads(string soname)
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(soname, out var h)) return false;
        System.Runtime.InteropServices.NativeLibrary.Free(h);
        return true;
    }
}
