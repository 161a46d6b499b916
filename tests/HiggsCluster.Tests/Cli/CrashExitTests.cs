using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Harness;
using HiggsCluster.Training.Demo;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// Real `higgs train` processes given bad input that used to end in exit 134 and a stack trace: each must end with its
/// documented exit code and exactly one line on stderr that names the problem, and no stack frame unless --verbose.
/// </summary>
[Trait("Category", "Adversarial")]
[Trait("Category", "Process")]
public sealed class CrashExitTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly HiggsProcesses _higgs = new();

    private string Config()
    {
        var ws = DemoWorkspace.Create(_dir.File("ws"), entries: 4, seed: 3, hidden: 32, layers: 1);
        var o = ws.TrainOptions(_dir.File("run"), maxSteps: 2);
        o.TensorBoard = false;
        return RunConfigYaml.Write(_dir.File("run.yaml"), o);
    }

    private async Task<string> RefusedWithOneLine(int code, string mustName, params string[] args)
    {
        var r = await _higgs.Run(null, 240, args);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("warning:", StringComparison.Ordinal)).ToList();
        Assert.True(r.Code == code, $"exit {r.Code}, expected {code}\nstderr:\n{r.Err}\nstdout tail:\n{string.Join('\n', r.Out.Split('\n').TakeLast(8))}");
        var line = Assert.Single(lines);
        Assert.StartsWith("higgs: ", line);
        Assert.Contains(mustName, line);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.DoesNotContain("Unhandled exception", r.Err);
        return line;
    }

    [Fact(Timeout = 300_000)]
    public async Task An_unknown_lora_target_is_refused_with_one_line()
    {
        var config = Config();
        await RefusedWithOneLine(2, "nonexistent", "train", "--config", config, "--targets=nonexistent");
    }

    [Fact(Timeout = 300_000)]
    public async Task A_cuda_device_on_a_cpu_build_is_refused_with_one_line_and_a_trace_only_with_verbose()
    {
        var config = Config();
        await RefusedWithOneLine(2, "cuda:7", "train", "--config", config, "--device=cuda:7");
        var verbose = await _higgs.Run(null, 240, "train", "--config", config, "--device=cuda:7", "--verbose");
        Assert.Equal(2, verbose.Code);
        Assert.Contains("   at ", verbose.Err);
    }

    [Fact(Timeout = 300_000)]
    public async Task An_unreadable_trainer_state_on_resume_is_refused_with_one_line()
    {
        var config = Config();
        var ckpt = Directory.CreateDirectory(_dir.File("run/checkpoints/checkpoint-0000002")).FullName;
        File.WriteAllText(Path.Combine(ckpt, "trainer_state.json"), "{ this is not json");
        await RefusedWithOneLine(2, "trainer state", "train", "--config", config, "--resume", ckpt);
    }

    [Fact(Timeout = 300_000)]
    public async Task No_complete_checkpoint_to_resume_is_refused_with_one_line()
    {
        var config = Config();
        // a checkpoint folder without trainer_state.json (written last) is an incomplete one
        Directory.CreateDirectory(_dir.File("run/checkpoints/checkpoint-0000002"));
        await RefusedWithOneLine(2, "no complete checkpoint", "train", "--config", config, "--resume", "latest");
    }

    [Fact(Timeout = 120_000)]
    public async Task An_unknown_option_and_help_on_a_real_process()
    {
        await RefusedWithOneLine(2, "--bogus", "data", "encode", "--bogus");
        var help = await _higgs.Run(null, 120, "data", "encode", "--help");
        Assert.Equal(0, help.Code);
        Assert.Contains("--manifest", help.Out);
        Assert.Equal("", help.Err);
    }

    public void Dispose()
    {
        _higgs.Dispose();
        _dir.Dispose();
    }
}
