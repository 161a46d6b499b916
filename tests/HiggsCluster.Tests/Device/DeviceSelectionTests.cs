using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Engine;
using Xunit;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Device;

/// <summary>Which device a run may use and which GPUs get a worker process: every refusal says what to change.</summary>
[Trait("Category", "Device")]
public sealed class DeviceSelectionTests
{
    [Fact]
    public void This_test_build_is_the_cpu_backend_and_a_cuda_device_asked_of_it_names_the_switch()
    {
        Assert.Equal("cpu", TorchDevices.BuildBackend);
        var e = Assert.Throws<TrainConfigException>(() => TorchDevices.Resolve("cuda"));
        Assert.Equal("model.device", e.Key);
        Assert.Contains("HIGGS_TORCH_BACKEND=cuda", e.Message);
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchDevices.Resolve("cpu").type);
    }

    [Fact]
    public void A_cuda_build_refuses_missing_gpus_and_indices_beyond_the_visible_ones()
    {
        Assert.Contains("sees no GPU", Assert.Throws<TrainConfigException>(() => TorchDevices.Resolve("cuda", backend: "cuda", cudaCount: () => 0)).Message);
        Assert.Contains("only 2 CUDA device(s) visible (cuda:0..cuda:1)",
            Assert.Throws<TrainConfigException>(() => TorchDevices.Resolve("cuda:7", backend: "cuda", cudaCount: () => 2)).Message);
        Assert.Contains("is not cpu, cuda or cuda:N", Assert.Throws<TrainConfigException>(() => TorchDevices.Resolve("cuda:x", backend: "cuda", cudaCount: () => 2)).Message);
        Assert.Contains("is not cpu, cuda or cuda:N", Assert.Throws<TrainConfigException>(() => TorchDevices.Resolve("tpu")).Message);
        var d = TorchDevices.Resolve("cuda:1", backend: "cuda", cudaCount: () => 2);
        Assert.Equal((TorchSharp.DeviceType.CUDA, 1L), (d.type, (long)d.index));
        // a CPU build run over an installed CUDA PyTorch's libtorch (HIGGS_LIBTORCH_DIR, the gpu-kit) may use its GPUs
        Assert.Equal(TorchSharp.DeviceType.CUDA, TorchDevices.Resolve("cuda", backend: "cpu", cudaCount: () => 1).type);
    }

    [Theory]
    [InlineData("all", "0,1,2,3", "0,1,2,3")]
    [InlineData("2", "0,1,2,3", "0,1")]
    [InlineData("0,3", "0,1,2,3", "0,3")]
    [InlineData("3,1", "0,1,2,3", "3,1")]
    [InlineData("1", "GPU-aa,GPU-bb", "GPU-aa")]
    public void Gpu_selection_picks_the_visible_devices_in_rank_order(string text, string visible, string expected) =>
        Assert.Equal(expected.Split(','), GpuSelection.Parse(text).Pick(visible.Split(',')));

    [Theory]
    [InlineData("9", "0,1,2,3", "9 GPUs asked, this machine has 4 GPU(s): 0,1,2,3")]
    [InlineData("0,5", "0,1", "GPU 5 asked, this machine has 2 GPU(s): 0,1")]
    [InlineData("all", "", "no GPU on this machine")]
    public void Gpu_selection_beyond_the_machine_is_refused_saying_what_it_has(string text, string visible, string message)
    {
        var e = Assert.Throws<FormatException>(() => GpuSelection.Parse(text).Pick(visible.Split(',', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("0,0", "two workers never share one GPU")]
    [InlineData("0", "asks for no GPU")]
    [InlineData("some", "is not all, a count or a list")]
    [InlineData("1,-2", "is not all, a count or a list")]
    public void Gpu_selection_text_is_checked(string text, string message) =>
        Assert.Contains(message, Assert.Throws<FormatException>(() => GpuSelection.Parse(text)).Message);

    [Fact]
    public void Visible_gpus_come_from_the_injected_list_then_cuda_visible_devices_then_nvidia_smi()
    {
        IReadOnlyList<string> Smi() => new[] { "0", "1", "2" };
        Assert.Equal(new[] { "7", "4" }, GpuSelection.Visible(k => k == "HIGGS_GPU_LIST" ? "7,4" : k == "CUDA_VISIBLE_DEVICES" ? "1" : null, Smi));
        Assert.Equal(new[] { "2", "0" }, GpuSelection.Visible(k => k == "CUDA_VISIBLE_DEVICES" ? "2,0" : null, Smi));
        Assert.Empty(GpuSelection.Visible(k => k == "CUDA_VISIBLE_DEVICES" ? "-1" : null, Smi));
        Assert.Equal(new[] { "0", "1", "2" }, GpuSelection.Visible(_ => null, Smi));
    }

    [Fact]
    public void Train_gpus_needs_a_cuda_build_and_a_cuda_device_unless_the_devices_are_injected()
    {
        var o = new TrainOptions { Device = "cuda:3" };
        Func<IReadOnlyList<string>> smi = () => new[] { "0", "1" };
        Assert.Contains("HIGGS_TORCH_BACKEND=cuda", Assert.Throws<CliUsageException>(() => GpuTrain.Choose("all", o, "cpu", _ => null, smi, () => 0)).Message);
        Assert.Equal(new[] { "0", "1" }, GpuTrain.Choose("all", o, "cpu", _ => null, smi, () => 2).Gpus);
        Assert.Contains("model.device is 'cpu'", Assert.Throws<CliUsageException>(() => GpuTrain.Choose("all", new TrainOptions(), "cuda", _ => null, smi)).Message);
        Assert.Contains("--gpus 9: 9 GPUs asked, this machine has 2", Assert.Throws<CliUsageException>(() => GpuTrain.Choose("9", o, "cuda", _ => null, smi)).Message);
        // every worker sees only its own GPU, so the run's device becomes cuda (their cuda:0)
        var (gpus, device) = GpuTrain.Choose("1,0", o, "cuda", _ => null, smi);
        Assert.Equal(new[] { "1", "0" }, gpus);
        Assert.Equal("cuda", device);
        // tests inject devices: a CPU build and a CPU run are then allowed
        var (fake, cpu) = GpuTrain.Choose("all", new TrainOptions(), "cpu", k => k == "HIGGS_GPU_LIST" ? "5,2" : null);
        Assert.Equal(new[] { "5", "2" }, fake);
        Assert.Equal("cpu", cpu);
    }

    [Fact]
    public void In_process_workers_are_refused_when_they_would_share_one_gpu()
    {
        var o = new TrainOptions { Device = "cuda", Ranks = 8 };
        Assert.Contains("train.ranks: 8 would start that many workers in this process, all on one GPU: use --gpus all", TrainCommand.SharedGpuRefusal(o, null));
        Assert.Contains("--workers 2 would start", TrainCommand.SharedGpuRefusal(o, "2"));
        Assert.Null(TrainCommand.SharedGpuRefusal(o, "1"));
        Assert.Null(TrainCommand.SharedGpuRefusal(new TrainOptions { Device = "cpu", Ranks = 8 }, null));
        Assert.Null(TrainCommand.SharedGpuRefusal(new TrainOptions { Device = "cuda:1", Ranks = 1 }, null));
    }

    [Fact]
    public void Worker_processes_get_their_gpu_ascending_ports_of_equal_width_and_the_shared_node_options()
    {
        var plan = GpuWorkerProcesses.Plan(new[] { "3", "0" }, new[] { 40102, 40101 }, new[] { "--seeds", "127.0.0.1:40100" }, "logs", "dotnet", "higgs.dll");
        Assert.Equal(new[] { ("3", 40101), ("0", 40102) }, plan.Select(c => (c.Gpu, c.Port)));
        Assert.All(plan, c =>
        {
            Assert.Equal(c.Gpu, c.StartInfo.Environment["CUDA_VISIBLE_DEVICES"]);
            Assert.False(c.StartInfo.Environment.ContainsKey("HIGGS_GPU_LIST"));
            Assert.Equal(new[] { "higgs.dll", "node", "--role", "worker", "--port", c.Port.ToString(), "--cmd-port", "off", "--seeds", "127.0.0.1:40100" },
                c.StartInfo.ArgumentList);
        });
        Assert.Throws<ArgumentException>(() => GpuWorkerProcesses.Plan(new[] { "0", "1" }, new[] { 9999, 10000 }, Array.Empty<string>(), "logs", "dotnet", "higgs.dll"));
    }
}
