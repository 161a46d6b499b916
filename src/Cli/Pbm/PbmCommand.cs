using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Grammar;
using HiggsCluster.Training.Engine;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli.Pbm;

/// <summary>
/// <c>higgs [host:port] &lt;palette&gt; &lt;command&gt; [args] [--options]</c> (the pbm grammar): parses and checks the command
/// against <see cref="CommandCatalog"/>, sends it to the node's command host and prints the reply — human text, or
/// one JSON object per line with --json. run watch renders a live progress bar on a terminal.
/// </summary>
public static partial class PbmCommand
{
    [GeneratedRegex(@"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")]
    private static partial Regex TargetPattern();


    /// <summary>Whether the words are a remote command (a host:port first, or a palette other than the local verbs).</summary>
    public static bool IsRemote(string[] args) =>
        args.Length > 0 && (TargetPattern().IsMatch(args[0])
            || args[0] is "cluster" or "run" or "loader" or "worker"
            || (args[0] == "node" && args.Length > 1 && args[1] is "info"));

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try { return RunAsync(args, stdout, stderr, CancellationToken.None).GetAwaiter().GetResult(); }
        catch (CliUsageException e) { stderr.WriteLine($"higgs: {e.Message}"); return ExitCodes.Usage; }
        catch (PbmConnectionException e) { stderr.WriteLine($"higgs: {e.Message}"); return ExitCodes.Unreachable; }
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var words = args.ToList();
        var target = TargetPattern().IsMatch(words.FirstOrDefault() ?? "") ? words[0] : null;
        if (target is not null) words.RemoveAt(0);
        target ??= Environment.GetEnvironmentVariable("HIGGS_CMD_TARGET") ?? $"127.0.0.1:{Wire.DefaultPort}";

        if (words.Count == 0 || words[0] is "help")
        {
            CommandCatalog.WriteHelp(stdout, words.ElementAtOrDefault(1), words.ElementAtOrDefault(2));
            return ExitCodes.Ok;
        }
        var parsed = RemoteGrammar.ParseClient(words);
        if (parsed.Help) { CommandCatalog.WriteHelp(stdout, parsed.Palette?.Name, parsed.Command?.Name); return ExitCodes.Ok; }
        var command = parsed.Command!;
        var given = parsed.Args!;
        var client = RemoteGrammar.ClientOptions(parsed.Result);
        var sent = command is { Palette: "run", Name: "submit" } ? ResolveSubmit(given) : RemoteGrammar.Words(command, given);

        bool json = client.ContainsKey("json");
        bool watch = command is { Palette: "run", Name: "watch" } && !json;
        bool plotOut = command is { Palette: "run", Name: "plot" or "samples" } && given.Get("out") is not null;
        bool streaming = command.Name is "watch" or "tail" || (command.Name == "logs" && given.Flag("follow"));
        var timeout = streaming ? (TimeSpan?)null
            : TimeSpan.FromSeconds(double.Parse(client.GetValueOrDefault("timeout", "30"), CultureInfo.InvariantCulture));

        var colon = target.LastIndexOf(':');
        var pbm = new PbmClient
        {
            Host = target[..colon].Trim('[', ']'), Port = int.Parse(target[(colon + 1)..], CultureInfo.InvariantCulture),
            Tls = client.ContainsKey("tls") || client.ContainsKey("tls-ca"),
            TrustedCertificate = client.TryGetValue("tls-ca", out var ca) ? LoadCertificate(ca) : null,
            TlsName = client.GetValueOrDefault("tls-name"),
        };
        var request = new Wire.Request(CommandHostOptions.ReadToken(client.GetValueOrDefault("token-file")),
            new[] { command.Palette, command.Name }.Concat(sent).ToArray(), json || watch || plotOut);

        int code; string? error;
        if (watch)
        {
            var view = WatchView.For(stdout);
            (code, error) = await view.Run(f => pbm.CallAsync(request, f, timeout, ct));
        }
        else
        {
            var outDir = plotOut ? given.Get("out")! : null;
            (code, error) = await pbm.CallAsync(request, frame =>
            {
                var k = frame["k"]?.GetValue<string>();
                if (k == "out") stdout.WriteLine(frame["text"]?.GetValue<string>());
                else if (k == "data" && frame["data"] is { } d)
                {
                    if (outDir is not null && d is JsonObject o && (o["png_base64"] ?? o["bytes_base64"]) is { } payload)
                    {
                        // a node names at most one sub-folder (step-N/) and a file; nothing it says can leave outDir
                        var parts = o["file"]!.GetValue<string>().Split('/').Select(Path.GetFileName).Where(x => x is { Length: > 0 } && x != ".." && x != ".").ToArray();
                        var file = Path.Combine(new[] { outDir }.Concat(parts.TakeLast(2)).ToArray()!);
                        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                        File.WriteAllBytes(file, Convert.FromBase64String(payload.GetValue<string>()));
                        if (json) stdout.WriteLine(new JsonObject { ["saved"] = Path.GetFullPath(file) }.ToJsonString());
                        else stdout.WriteLine($"saved {Path.GetFullPath(file)}");
                    }
                    else if (json) stdout.WriteLine(d.ToJsonString());
                    else if (d is JsonObject r && r["files"] is JsonArray files) foreach (var f in files) stdout.WriteLine($"wrote {f} (on the node)");
                }
                return Task.CompletedTask;
            }, timeout, ct);
        }
        if (error is not null) stderr.WriteLine($"higgs: {error}");
        return code;
    }

    private static X509Certificate2 LoadCertificate(string path)
    {
        if (!File.Exists(path)) throw new CliUsageException($"--tls-ca: file not found: {path}");
        return X509CertificateLoader.LoadCertificateFromFile(path);
    }

    /// <summary>
    /// run submit: the YAML is read here (paths relative to the file, --key=value overrides relative to the working
    /// directory), every path made absolute, and the resolved keys sent; the host checks them against its roots.
    /// </summary>
    private static List<string> ResolveSubmit(CliArgs a)
    {
        var config = a.Get("config") ?? throw new CliUsageException("run submit needs --config f.yaml");
        string[] own = { "config", "run-id", "shards", "start-workers", "resume" };
        var overrides = a.Overrides;
        TrainOptions o;
        try { o = TrainConfig.Load(config, overrides); }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        string? Abs(string? p) => string.IsNullOrEmpty(p) ? p : Path.GetFullPath(p);
        o.Manifest = Abs(o.Manifest)!; o.Manifests = o.Manifests.Select(c => c with { Path = Abs(c.Path)!, DataRoot = Abs(c.DataRoot) }).ToArray();
        o.ValidationManifest = Abs(o.ValidationManifest); o.DataRoot = Abs(o.DataRoot);
        o.TextTokenizer = Abs(o.TextTokenizer)!; o.AudioTokenizer = Abs(o.AudioTokenizer)!; o.CodeCache = Abs(o.CodeCache);
        o.BaseModelDir = Abs(o.BaseModelDir)!; o.OutputDir = Abs(o.OutputDir)!;
        var sent = new List<string>();
        foreach (var k in own.Skip(1))
            if (a.Get(k) is { } v) { sent.Add("--" + k); sent.Add(k == "resume" && v != "latest" ? Path.GetFullPath(v) : v); }
        foreach (var (k, v) in o.Resolved()) sent.Add($"--{RunCommands.ResolvedOption}={k}={v}");
        return sent;
    }
}
