using System.Diagnostics;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training;
using Xunit;

namespace HiggsCluster.Tests.Device;

/// <summary>
/// scripts/torch-backend.sh, the one place HIGGS_TORCH_BACKEND is read (./higgs, bench/run and the docs use it): run
/// with a PATH of our making, so `auto` sees exactly the nvidia-smi the test puts there, or none.
/// </summary>
[Trait("Category", "Device")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // bash scripts and Unix file modes
public sealed class TorchBackendScriptTests : IDisposable
{
    private readonly TempDir _dir = new();
    private static string Script => Path.Combine(RepoPaths.Root, "scripts", "torch-backend.sh");

    /// <summary>A PATH holding only the tools the script needs besides nvidia-smi, plus what <paramref name="extra"/> adds.</summary>
    private string PathWith(params (string Name, string Text)[] extra)
    {
        var bin = Directory.CreateDirectory(_dir.File("bin-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        foreach (var tool in new[] { "timeout", "grep" })
        {
            var real = new[] { "/usr/bin", "/bin" }.Select(d => Path.Combine(d, tool)).First(File.Exists);
            File.CreateSymbolicLink(Path.Combine(bin, tool), real);
        }
        foreach (var (name, text) in extra)
        {
            var f = Path.Combine(bin, name);
            File.WriteAllText(f, text);
            File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        return bin;
    }

    private static (int Code, string Out, string Err) Run(string? value, string path)
    {
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Script);
        psi.Environment["PATH"] = path;
        if (value is null) psi.Environment.Remove("HIGGS_TORCH_BACKEND");
        else psi.Environment["HIGGS_TORCH_BACKEND"] = value;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException("torch-backend.sh did not finish in 60 s"); }
        return (p.ExitCode, o.Result, e.Result);
    }

    private const string OneGpu = "#!/bin/sh\n[ \"$1\" = -L ] && echo 'GPU 0: NVIDIA H100 (UUID: GPU-x)'\n";

    [Theory]
    [InlineData("cpu", "cpu")] // an explicit choice is not second-guessed: cpu on a machine that lists a GPU
    [InlineData("cuda", "cuda")]
    [InlineData("CUDA", "cuda")]
    public void An_explicit_backend_is_printed_as_given(string value, string expected)
    {
        var r = Run(value, PathWith(("nvidia-smi", OneGpu)));
        Assert.Equal((0, expected), (r.Code, r.Out.Trim()));
    }

    [Fact]
    public void Cuda_is_printed_on_a_machine_without_nvidia_smi_too() =>
        Assert.Equal("cuda", Run("cuda", PathWith()).Out.Trim());

    [Fact]
    public void An_unknown_value_exits_2_with_one_line_naming_the_variable()
    {
        var r = Run("bogus", PathWith());
        Assert.Equal(2, r.Code);
        Assert.Equal("", r.Out);
        var line = Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains("HIGGS_TORCH_BACKEND", line);
        Assert.Contains("bogus", line);
    }

    [Theory]
    [InlineData("auto")]
    [InlineData(null)] // unset means auto
    public void Auto_without_nvidia_smi_builds_for_the_cpu(string? value)
    {
        var r = Run(value, PathWith());
        Assert.Equal((0, "cpu"), (r.Code, r.Out.Trim()));
    }

    [Theory]
    [InlineData("auto")]
    [InlineData(null)]
    public void Auto_with_a_gpu_listed_builds_for_cuda(string? value) =>
        Assert.Equal("cuda", Run(value, PathWith(("nvidia-smi", OneGpu))).Out.Trim());

    [Fact]
    public void Auto_with_an_nvidia_smi_that_finds_no_driver_builds_for_the_cpu()
    {
        var broken = "#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA driver.'\nexit 9\n";
        Assert.Equal("cpu", Run("auto", PathWith(("nvidia-smi", broken))).Out.Trim());
        var none = "#!/bin/sh\necho 'No devices were found'\nexit 6\n";
        Assert.Equal("cpu", Run("auto", PathWith(("nvidia-smi", none))).Out.Trim());
    }

    public void Dispose() => _dir.Dispose();
}
