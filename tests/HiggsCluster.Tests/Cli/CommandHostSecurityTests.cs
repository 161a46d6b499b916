using System.Text;
using System.Text.Json;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Cluster;
using HiggsCluster.Training.Engine;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Engine;
using Xunit;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// The command host's guards against a real in-process node: the token, the data/output roots of submitted runs
/// (absolute paths, "..", symbolic links), the request size limit and TLS. Every refusal must be logged with its reason.
/// </summary>
[Trait("Category", "Cli")]
public sealed class CommandHostSecurityTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static async Task Eventually(Func<bool> ok, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!ok() && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(ok(), what);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_request_without_a_token_is_refused_and_logged()
    {
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path });
        var client = new PbmClient { Host = "127.0.0.1", Port = host.Port };
        var (code, error) = await client.CallAsync(new Wire.Request(null, new[] { "node", "info" }, false), _ => Task.CompletedTask, TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(ExitCodes.Unauthorized, code);
        Assert.Contains("no token", error);
        await Eventually(() => host.Refusals.Any(l => l.Contains("[node info]") && l.Contains("no token")), "refusal not logged:\n" + string.Join("\n", host.Status.Lines));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_wrong_token_is_refused_and_logged_and_the_right_one_works()
    {
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path });
        var wrong = _dir.File("wrong-token");
        await File.WriteAllTextAsync(wrong, "not-the-token-but-long-enough", TestContext.Current.CancellationToken);
        var refused = host.Cli("node", "info", "--token-file", wrong);
        Assert.Equal(ExitCodes.Unauthorized, refused.Code);
        Assert.Contains("wrong token", refused.Err);
        Assert.Equal("", refused.Out);
        await Eventually(() => host.Refusals.Any(l => l.Contains("wrong token")), "refusal not logged");

        var ok = host.Cli("node", "info", "--json", "--token-file", host.TokenFile);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Contains("\"roles\":[\"coordinator\"]", ok.Out);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_run_reaching_outside_the_roots_is_refused_with_the_reason()
    {
        var ws = EngineWorkspace.Workspace;
        var outRoot = Directory.CreateDirectory(_dir.File("out")).FullName;
        var outside = Directory.CreateDirectory(_dir.File("outside")).FullName;
        await using var host = await CliHost.Start(_dir.Path, new[] { ws.Root }, new[] { outRoot });
        var o = EngineWorkspace.Options(Path.Combine(outRoot, "ok"), maxSteps: 2);
        o.CodeCache = Path.Combine(outRoot, "code-cache"); // written by the loaders: must be under an output root
        var config = RunConfigYaml.Write(_dir.File("run.yaml"), o);

        // output outside the output roots
        var r = host.Cli("run", "submit", "--config", config, "--run-id", "esc-abs", "--output_dir=" + Path.Combine(outside, "x"), "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Failed, r.Code);
        Assert.Contains($"train.output_dir = {Path.Combine(outside, "x")} is outside the output roots ({outRoot})", r.Err);

        // a symbolic link inside the output root that points out of it
        File.CreateSymbolicLink(Path.Combine(outRoot, "escape"), outside);
        r = host.Cli("run", "submit", "--config", config, "--run-id", "esc-link", "--output_dir=" + Path.Combine(outRoot, "escape", "run"), "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Failed, r.Code);
        Assert.Contains($"resolves to {Path.Combine(outside, "run")}) is outside the output roots", r.Err);

        // "../" sent as is (the CLI would normalise it, a hand-made client need not)
        var resolved = o.Resolved().Select(kv => kv.Key == "data.manifest" ? new KeyValuePair<string, string>(kv.Key, ws.Root + "/data/../../outside.jsonl") : kv);
        var argv = new[] { "run", "submit", "--run-id", "esc-dots" }.Concat(resolved.Select(kv => $"--{RunCommands.ResolvedOption}={kv.Key}={kv.Value}")).ToArray();
        var (code, error) = await new PbmClient { Host = "127.0.0.1", Port = host.Port }
            .CallAsync(new Wire.Request(CliHost.Token, argv, false), _ => Task.CompletedTask, TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(ExitCodes.Failed, code);
        Assert.Contains("data.manifest = " + ws.Root + "/data/../../outside.jsonl", error);
        Assert.Contains("is outside the data and output roots", error);

        foreach (var id in new[] { "esc-abs", "esc-link", "esc-dots" })
            await Eventually(() => host.Refusals.Any(l => l.Contains("[run submit]") && l.Contains("outside the")), $"refusal of {id} not logged");
        Assert.Equal(3, host.Refusals.Count(l => l.Contains("outside the")));

        // none of them reached the coordinator; the same config inside the roots does
        var list = host.Cli("run", "list", "--json", "--token-file", host.TokenFile);
        Assert.Equal("[]", list.Out.Trim());
        var accepted = host.Cli("run", "submit", "--config", config, "--run-id", "inside", "--token-file", host.TokenFile);
        Assert.True(accepted.Code == 0, accepted.Err);
        Assert.Contains("run inside accepted", accepted.Out);
        Assert.Contains("\"run_id\":\"inside\"", host.Cli("run", "list", "--json", "--token-file", host.TokenFile).Out);
        Assert.Equal(0, host.Cli("run", "stop", "inside", "--token-file", host.TokenFile).Code);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_bad_config_value_is_refused_with_its_key_and_exit_2_before_the_coordinator_sees_the_run()
    {
        var ws = EngineWorkspace.Workspace;
        var outRoot = Directory.CreateDirectory(_dir.File("out")).FullName;
        await using var host = await CliHost.Start(_dir.Path, new[] { ws.Root }, new[] { outRoot });
        var o = EngineWorkspace.Options(Path.Combine(outRoot, "bad"), maxSteps: 2);
        o.CodeCache = Path.Combine(outRoot, "code-cache");
        var config = RunConfigYaml.Write(_dir.File("run.yaml"), o);

        // a value of the right form but out of range: the CLI sends it, the host's one validation refuses it
        var r = host.Cli("run", "submit", "--config", config, "--run-id", "bad-dropout", "--lora.dropout=1.5", "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Usage, r.Code);
        Assert.Contains("config key 'lora.dropout': must be in [0, 1), got 1.5", r.Err);

        // a value of the wrong form sent by a hand-made client: refused by the one parser, naming the key
        var resolved = o.Resolved().Select(kv => kv.Key == "train.lr" ? new KeyValuePair<string, string>(kv.Key, "fast") : kv);
        var argv = new[] { "run", "submit", "--run-id", "bad-lr" }.Concat(resolved.Select(kv => $"--{RunCommands.ResolvedOption}={kv.Key}={kv.Value}")).ToArray();
        var (code, error) = await new PbmClient { Host = "127.0.0.1", Port = host.Port }
            .CallAsync(new Wire.Request(CliHost.Token, argv, false), _ => Task.CompletedTask, TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("config key 'train.lr': must be a number, got 'fast'", error);

        Assert.Equal("[]", host.Cli("run", "list", "--json", "--token-file", host.TokenFile).Out.Trim());
    }

    private static string CheckpointAt(string dir, long nextStep, double? best = null, int noImprove = 0)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, TrainerCheckpoint.StateFile), JsonSerializer.Serialize(
            new TrainerState { NextStep = nextStep, BestValLoss = best, ValidationsWithoutImprovement = noImprove }));
        return dir;
    }

    [Fact(Timeout = 120_000)]
    public async Task A_resume_checkpoint_is_read_only_inside_the_roots_and_latest_must_exist()
    {
        var ws = EngineWorkspace.Workspace;
        var outRoot = Directory.CreateDirectory(_dir.File("out")).FullName;
        var outside = Directory.CreateDirectory(_dir.File("outside")).FullName;
        await using var host = await CliHost.Start(_dir.Path, new[] { ws.Root }, new[] { outRoot });
        var o = EngineWorkspace.Options(Path.Combine(outRoot, "ok"), maxSteps: 2);
        o.CodeCache = Path.Combine(outRoot, "code-cache");
        var config = RunConfigYaml.Write(_dir.File("run.yaml"), o);

        var foreign = CheckpointAt(Path.Combine(outside, "checkpoint-3"), 3);
        var r = host.Cli("run", "submit", "--config", config, "--run-id", "res-out", "--resume", foreign, "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Failed, r.Code);
        Assert.Contains($"--resume = {foreign} is outside the data and output roots", r.Err);

        r = host.Cli("run", "submit", "--config", config, "--run-id", "res-none", "--resume", "latest", "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Failed, r.Code);
        Assert.Contains($"no complete checkpoint under {Path.Combine(outRoot, "ok", "checkpoints")}", r.Err);

        CheckpointAt(Path.Combine(outRoot, "ok", "checkpoints", "checkpoint-1"), 1);
        CheckpointAt(Path.Combine(outRoot, "ok", "checkpoints", "checkpoint-2"), 2);
        r = host.Cli("run", "submit", "--config", config, "--run-id", "res-ok", "--resume", "latest", "--token-file", host.TokenFile);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("run res-ok accepted", r.Out);
        Assert.Equal(0, host.Cli("run", "stop", "res-ok", "--token-file", host.TokenFile).Code);
    }

    [Fact]
    public void A_resumed_spec_continues_after_the_checkpoint_with_its_early_stopping_bookkeeping()
    {
        var spec = ToyCluster.Spec("r");
        var dir = CheckpointAt(_dir.File("checkpoint-6"), 6, best: 1.25, noImprove: 2);
        var resumed = RunSpecFactory.Resumed(spec, dir);
        Assert.Equal((6L, Path.GetFullPath(dir), 1.25, 2), (resumed.StartStep, resumed.ResumeFrom, resumed.ResumeBestLoss, resumed.ResumeValidationsWithoutImprovement));
        Assert.Equal(spec with { StartStep = 0, ResumeFrom = null, ResumeBestLoss = null, ResumeValidationsWithoutImprovement = 0 }, resumed with
        {
            StartStep = 0, ResumeFrom = null, ResumeBestLoss = null, ResumeValidationsWithoutImprovement = 0,
        });
        File.WriteAllText(Path.Combine(dir, TrainerCheckpoint.StateFile), "{ not json");
        var e = Assert.Throws<TrainConfigException>(() => RunSpecFactory.Resumed(spec, dir));
        Assert.Equal("--resume", e.Key);
        Assert.Contains(dir, e.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_oversized_or_malformed_request_is_refused_and_logged()
    {
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path }, maxRequest: 4096);
        var reply = await host.Raw(Encoding.UTF8.GetBytes(new string('a', 20_000) + "\n"));
        Assert.Contains("request larger than 4096 bytes", reply);
        reply = await host.Raw(Encoding.UTF8.GetBytes("cluster show\n"));
        Assert.Contains("request is not a JSON object", reply);
        await Eventually(() => host.Refusals.Any(l => l.Contains("larger than 4096")) && host.Refusals.Any(l => l.Contains("not a JSON object")), "refusals not logged");
    }

    [Fact(Timeout = 60_000)]
    public async Task With_tls_the_cli_works_with_the_certificate_and_fails_without()
    {
        var (pfx, cer) = CliHost.MakeCertificate(_dir.Path);
        await using var host = await CliHost.Start(_dir.Path, new[] { _dir.Path }, new[] { _dir.Path }, tlsPfx: pfx);
        Assert.Contains(host.Status.Lines, l => l.StartsWith("HIGGS_CMD listening=") && l.EndsWith("tls=on"));

        var ok = host.Cli("cluster", "show", "--tls-ca", cer, "--token-file", host.TokenFile);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Contains("[coordinator] | up", ok.Out);

        var untrusted = host.Cli("cluster", "show", "--tls", "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Unreachable, untrusted.Code);
        Assert.Contains("TLS handshake", untrusted.Err);

        var other = CliHost.MakeCertificate(_dir.Path, "other").Cer;
        var wrongCa = host.Cli("cluster", "show", "--tls-ca", other, "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Unreachable, wrongCa.Code);

        var plain = host.Cli("cluster", "show", "--token-file", host.TokenFile);
        Assert.Equal(ExitCodes.Unreachable, plain.Code);
        Assert.Contains("--tls", plain.Err);
        Assert.DoesNotContain("[coordinator]", untrusted.Out + wrongCa.Out + plain.Out);
        // the untrusted cases are refused by the client (it hangs up after seeing the certificate); the plain-text
        // request is refused by the host
        await Eventually(() => host.Refusals.Any(l => l.Contains("TLS handshake failed")), "TLS refusal not logged:\n" + string.Join("\n", host.Status.Lines));
    }

    public void Dispose() => _dir.Dispose();
}
