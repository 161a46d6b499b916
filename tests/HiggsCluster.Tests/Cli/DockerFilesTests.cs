using System.Diagnostics;
using System.Text.RegularExpressions;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// docker/compose.yaml and docker/Dockerfile checked without a Docker engine: the compose file through
/// `docker-compose config` (the compose schema and interpolation), the Dockerfile through the dockerfile-utils linter,
/// and both against what the repository needs (every project copied for the restore layer, GPU workers reserved).
/// scripts/fetch-lint-tools.sh installs the two tools (.ci/run calls it).
/// </summary>
[Trait("Category", "Cli")]
public sealed class DockerFilesTests : IDisposable
{
    private readonly TempDir _dir = new();
    private static string Root => RepoPaths.Root;
    private static string Compose => Path.Combine(Root, "docker", "compose.yaml");
    private static string Dockerfile => Path.Combine(Root, "docker", "Dockerfile");
    private static string Linter => Path.Combine(Root, ".testdata", "npm", "node_modules", ".bin", "dockerfile-utils");

    private static (int Code, string Out, string Err) Run(string file, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.Combine(Root, "docker") };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"{file} is not installed ({e.Message}): run scripts/fetch-lint-tools.sh"); }
        using (p)
        {
            var o = p.StandardOutput.ReadToEndAsync();
            var err = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 60 s"); }
            return (p.ExitCode, o.Result, err.Result);
        }
    }

    private static readonly Dictionary<string, string> ComposeEnv = new()
    {
        ["HIGGS_SEEDS"] = "10.0.0.1:4053,10.0.0.1:4054,10.0.0.1:4055", ["HIGGS_PUBLIC_HOST"] = "10.0.0.2",
    };

    private (int Code, string Out, string Err) ComposeConfig(string file, params string[] extra) =>
        Run("docker-compose", ComposeEnv, new[] { "-f", file, "config" }.Concat(extra).ToArray());

    [Fact]
    public void The_compose_file_is_valid_for_docker_compose_and_a_broken_copy_is_not()
    {
        var ok = ComposeConfig(Compose);
        Assert.True(ok.Code == 0, "docker-compose config refused docker/compose.yaml:\n" + ok.Err);

        // the validator is not a rubber stamp: a misspelt key and a wrongly typed GPU reservation are refused
        var text = File.ReadAllText(Compose);
        var typo = _dir.File("typo.yaml");
        File.WriteAllText(typo, text.Replace("restart: unless-stopped", "restrat: unless-stopped"));
        var bad = ComposeConfig(typo, "-q");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("restrat", bad.Err);
        var badGpu = _dir.File("gpu.yaml");
        File.WriteAllText(badGpu, text.Replace("device_ids: [\"0\"]", "device_ids: \"0\""));
        Assert.NotEqual(0, ComposeConfig(badGpu, "-q").Code);

        // the seeds and public host are required: without them compose stops with the hint written in the file
        var noEnv = Run("docker-compose", new Dictionary<string, string> { ["HIGGS_SEEDS"] = "" }, "-f", Compose, "config", "-q");
        Assert.NotEqual(0, noEnv.Code);
        Assert.Contains("HIGGS_SEEDS", noEnv.Err);
    }

    [Fact]
    public void The_resolved_compose_file_has_three_seeds_pinned_gpu_workers_and_shared_volumes()
    {
        var ok = ComposeConfig(Compose);
        Assert.True(ok.Code == 0, ok.Err);
        var yaml = new YamlStream();
        yaml.Load(new StringReader(ok.Out));
        var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
        string Env(YamlMappingNode s, string key) => ((YamlScalarNode)((YamlMappingNode)s["environment"])[key]).Value!;
        var all = services.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => (YamlMappingNode)kv.Value);

        var coordinators = all.Values.Where(s => Env(s, "HIGGS_NODE__ROLES") == "coordinator").ToList();
        Assert.Equal(3, coordinators.Count);
        // fail-over replays the journal the dead coordinator wrote: one journal for all, on storage every node mounts
        var journal = Assert.Single(coordinators.Select(s => Env(s, "HIGGS_NODE__JOURNAL")).Distinct());
        Assert.StartsWith("sqlite:", journal);
        Assert.All(coordinators, s => Assert.Contains(Env(s, "HIGGS_NODE__OUTPUTROOTS").Split(','), r => journal["sqlite:".Length..].StartsWith(r + "/", StringComparison.Ordinal)));
        var workers = all.Values.Where(s => Env(s, "HIGGS_NODE__ROLES") == "worker").ToList();
        Assert.NotEmpty(workers);
        var gpus = workers.Select(w =>
        {
            var dev = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)w["deploy"])["resources"])["reservations"])["devices"])[0];
            Assert.Contains("gpu", ((YamlSequenceNode)dev["capabilities"]).Select(c => ((YamlScalarNode)c).Value));
            return string.Join(",", ((YamlSequenceNode)dev["device_ids"]).Select(c => ((YamlScalarNode)c).Value));
        }).ToList();
        Assert.Equal(gpus.Count, gpus.Distinct().Count()); // one GPU per worker, none shared

        foreach (var (name, s) in all)
        {
            Assert.True(((YamlScalarNode)s["restart"]).Value == "unless-stopped", name);
            // on one machine (host networking) every node needs its own Akka and command-host port
            Assert.Single(all.Values, o => Env(o, "HIGGS_NODE__PORT") == Env(s, "HIGGS_NODE__PORT"));
            Assert.Single(all.Values, o => Env(o, "HIGGS_NODE__CMDPORT") == Env(s, "HIGGS_NODE__CMDPORT"));
            var volumes = ((YamlSequenceNode)s["volumes"]).Select(v => ((YamlScalarNode)v).Value!).ToList();
            // data, code cache and runs mounted at the same path inside as outside, so a run config means the same everywhere
            Assert.Equal(3, volumes.Count(v => v.Split(':') is [var host, var inside, ..] && host == inside));
            foreach (var root in Env(s, "HIGGS_NODE__DATAROOTS").Split(',').Concat(Env(s, "HIGGS_NODE__OUTPUTROOTS").Split(',')))
                Assert.Contains(volumes, v => v.StartsWith(root + ":", StringComparison.Ordinal));
            // membership is closed: every node presents its own certificate from the read-only certs mount, none is open
            var cert = Env(s, "HIGGS_NODE__REMOTETLSCERT");
            Assert.Equal($"/certs/{name}.pfx", cert);
            Assert.Contains(volumes, v => v.EndsWith(":/certs:ro", StringComparison.Ordinal));
            Assert.False(((YamlMappingNode)s["environment"]).Children.ContainsKey(new YamlScalarNode("HIGGS_NODE__INSECURE")), name);
            Assert.DoesNotContain("--insecure", ok.Out);
        }
    }

    [Fact]
    public void The_dockerfile_passes_the_linter_and_a_broken_copy_does_not()
    {
        Assert.True(File.Exists(Linter), $"{Linter} missing: run scripts/fetch-lint-tools.sh");
        var ok = Run(Linter, null, "lint", Dockerfile);
        Assert.True(ok.Code == 0 && ok.Out.Trim().Length == 0, "dockerfile-utils lint:\n" + ok.Out + ok.Err);

        var bad = _dir.File("Dockerfile");
        File.WriteAllText(bad, File.ReadAllText(Dockerfile).Replace("COPY --from=build", "COPY --form=build").Replace("EXPOSE 4053", "EXPOSE port"));
        var refused = Run(Linter, null, "lint", bad);
        Assert.NotEqual(0, refused.Code);
        Assert.Contains("Unknown flag: form", refused.Out);
        Assert.Contains("Invalid containerPort", refused.Out);
    }

    /// <summary>Instructions with their continuation lines joined, comments dropped.</summary>
    private static List<string> Instructions(string text) =>
        Regex.Replace(string.Join("\n", text.Split('\n').Where(l => !l.TrimStart().StartsWith('#'))), @"\\\s*\n", " ")
            .Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();

    [Fact]
    public void The_dockerfile_copies_every_project_resolves_both_backends_and_runs_as_a_non_root_user()
    {
        var ins = Instructions(File.ReadAllText(Dockerfile));
        // the restore layer copies project files one by one: a project added to src/ must be added there too
        var copied = ins.Where(i => i.StartsWith("COPY ", StringComparison.Ordinal) && !i.Contains("--from"))
            .SelectMany(i => i.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..^1]).ToHashSet();
        foreach (var proj in Directory.GetFiles(Path.Combine(Root, "src"), "*.csproj", SearchOption.AllDirectories))
            Assert.Contains(Path.GetRelativePath(Root, proj).Replace('\\', '/'), copied);
        foreach (var path in copied.Where(p => !p.EndsWith('/')))
            Assert.True(File.Exists(Path.Combine(Root, path)), $"COPY {path}: no such file in the repository");

        // every stage a COPY --from or FROM names exists, for TORCH_BACKEND=cpu and =cuda
        var stages = ins.Select(i => Regex.Match(i, @"^FROM\s+\S+\s+AS\s+(\S+)$", RegexOptions.IgnoreCase)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
        foreach (var backend in new[] { "cpu", "cuda" })
            Assert.Contains(ins, i => i.StartsWith("FROM base-${TORCH_BACKEND} AS runtime", StringComparison.Ordinal) && stages.Contains("base-" + backend));
        foreach (var from in ins.Select(i => Regex.Match(i, @"--from=(\S+)")).Where(m => m.Success))
            Assert.Contains(from.Groups[1].Value, stages);
        Assert.Contains(ins, i => Regex.IsMatch(i, @"^ARG TORCH_BACKEND=cpu$"));
        var restore = ins.Single(i => i.StartsWith("RUN dotnet restore", StringComparison.Ordinal));
        Assert.Contains("-p:TorchBackend=${TORCH_BACKEND}", restore);

        // the runtime stage (the last) ends as a named non-root user
        var runtime = ins.Skip(ins.FindLastIndex(i => i.StartsWith("FROM ", StringComparison.Ordinal))).ToList();
        var user = runtime.Last(i => i.StartsWith("USER ", StringComparison.Ordinal))[5..].Trim();
        Assert.NotEqual("root", user);
        Assert.NotEqual("0", user);
        Assert.Contains(runtime, i => i.Contains("useradd") && i.Contains(user));
    }

    /// <summary>systemd-analyze verify on a copy whose ExecStart names an existing program (the unit's own path is a
    /// deployment path); any complaint (unknown key, bad value) is a failure.</summary>
    private (int Code, string Err) VerifyUnit(string text)
    {
        var dir = Directory.CreateDirectory(_dir.File("units-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        File.WriteAllText(Path.Combine(dir, "higgs-node@.service"), text.Replace("ExecStart=/opt/higgs/higgs", "ExecStart=/bin/sh"));
        var r = Run("systemd-analyze", null, "verify", "--man=no", Path.Combine(dir, "higgs-node@worker-0.service"));
        return (r.Code, r.Err + r.Out);
    }

    [Fact]
    public void The_systemd_unit_example_verifies_and_a_broken_copy_does_not()
    {
        var unit = File.ReadAllText(Path.Combine(Root, "docs", "systemd", "higgs-node@.service"));
        Assert.Contains("ExecStart=/opt/higgs/higgs node", unit);
        var ok = VerifyUnit(unit);
        Assert.True(ok.Code == 0 && ok.Err.Trim().Length == 0, "systemd-analyze verify:\n" + ok.Err);

        var typo = VerifyUnit(unit.Replace("KillSignal=", "KillSignall="));
        Assert.Contains("Unknown key", typo.Err);
        var badValue = VerifyUnit(unit.Replace("Restart=always", "Restart=sometimes"));
        Assert.Contains("restart specifier", badValue.Err);

        // every instance file the doc ships names a role the node knows and ports of its own
        var envs = Directory.GetFiles(Path.Combine(Root, "docs", "systemd"), "*.env")
            .Where(f => Path.GetFileName(f) != "node.env")
            .Select(f => File.ReadAllLines(f).Where(l => l.Contains('=') && !l.StartsWith('#')).ToDictionary(l => l[..l.IndexOf('=')], l => l[(l.IndexOf('=') + 1)..]))
            .ToList();
        Assert.NotEmpty(envs);
        foreach (var e in envs) Assert.Contains(e["HIGGS_NODE__ROLES"], HiggsCluster.Cli.Node.NodeOptions.KnownRoles);
        Assert.Equal(envs.Count, envs.Select(e => e["HIGGS_NODE__PORT"]).Distinct().Count());
        Assert.Equal(envs.Count, envs.Select(e => e["HIGGS_NODE__CMDPORT"]).Distinct().Count());
        // every instance has its own certificate of the cluster CA; nothing opens membership
        Assert.Equal(envs.Count, envs.Select(e => e["HIGGS_NODE__REMOTETLSCERT"]).Distinct().Count());
        foreach (var f in Directory.GetFiles(Path.Combine(Root, "docs", "systemd")))
            Assert.DoesNotMatch(@"(?im)^\s*[^#\n]*(--insecure|HIGGS_NODE__INSECURE)", File.ReadAllText(f));
    }

    public void Dispose() => _dir.Dispose();
}
