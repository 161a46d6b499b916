namespace HiggsCluster.Cli.Pbm;

/// <summary>
/// Every palette and command of the command host: what `help` prints and what both sides check a request against
/// (positional arguments, known options). The client and the host are the same tool, so one table serves both.
/// </summary>
public static class CommandCatalog
{
    public sealed record Option(string Name, string Help, bool IsFlag = false);
    public sealed record Command(string Palette, string Name, string[] Args, string Help, Option[] Options)
    {
        public string Usage => $"{Palette} {Name}" + string.Concat(Args.Select(a => a.EndsWith('?') ? $" [{a.TrimEnd('?')}]" : $" <{a}>"))
            + string.Concat(Options.Select(o => o.IsFlag ? $" [--{o.Name}]" : $" [--{o.Name} V]"));
        public int Required => Args.Count(a => !a.EndsWith('?'));
    }

    public sealed record Palette(string Name, string Help, Command[] Commands);

    private static Option O(string name, string help) => new(name, help);
    private static Option F(string name, string help) => new(name, help, IsFlag: true);

    public static readonly IReadOnlyList<Palette> Palettes = new[]
    {
        new Palette("cluster", "membership of the Akka.NET cluster", new[]
        {
            new Command("cluster", "show", Array.Empty<string>(), "every member: address, roles, status, reachability; the leader", Array.Empty<Option>()),
            new Command("cluster", "leave", new[] { "address?" }, "graceful leave of a member (default: the node you are connected to); its process exits", Array.Empty<Option>()),
            new Command("cluster", "down", new[] { "address" }, "mark a member down (it is removed without a handshake)", Array.Empty<Option>()),
            new Command("cluster", "down-unreachable", Array.Empty<string>(), "down every member that is unreachable now", Array.Empty<Option>()),
            new Command("cluster", "join", new[] { "address" }, "make the connected node join the cluster at address", Array.Empty<Option>()),
            new Command("cluster", "tail", Array.Empty<string>(), "stream membership events until interrupted", new[] { O("count", "stop after N events"), O("seconds", "stop after S seconds") }),
        }),
        new Palette("run", "training runs of the coordinator", new[]
        {
            new Command("run", "submit", Array.Empty<string>(), "submit a LoRA run; --key=value overrides any config key (as for 'higgs train')", new[]
            {
                O("config", "the run's YAML config (read by this CLI; paths relative to the file, sent absolute)"),
                O("run-id", "run id (default: run-<UTC time>)"), O("shards", "manifest shards spread over the loaders (default 16)"),
                O("start-workers", "workers to wait for before the first step (default 1)"),
                O("resume", "continue from a checkpoint: 'latest' (newest under the run's output_dir/checkpoints) or a checkpoint folder"),
            }),
            new Command("run", "list", Array.Empty<string>(), "every run with phase and progress", Array.Empty<Option>()),
            new Command("run", "status", new[] { "run-id" }, "phase, step, epoch and the last step's losses (text, audio, per codebook)", Array.Empty<Option>()),
            new Command("run", "watch", new[] { "run-id" }, "live progress bar and per-codebook losses until the run ends (exit 0 Completed, 1 Failed, 6 Stopped)", new[] { O("interval", "seconds between polls (default 0.5)") }),
            new Command("run", "stop", new[] { "run-id" }, "stop the run", new[] { F("checkpoint", "save a checkpoint before stopping") }),
            new Command("run", "checkpoint", new[] { "run-id" }, "save a checkpoint after the current step", new[] { O("tag", "checkpoint tag") }),
            new Command("run", "validate", new[] { "run-id" }, "run validation after the current step", Array.Empty<Option>()),
            new Command("run", "logs", new[] { "run-id" }, "the run's metrics log (train steps and validations)", new[] { O("tail", "only the last N records"), F("follow", "keep printing until the run ends") }),
            new Command("run", "plot", new[] { "run-id" }, "write loss, per-codebook and validation PNG curves from metrics.jsonl", new[] { O("out", "also copy the PNGs to this folder on the CLI's machine") }),
            new Command("run", "samples", new[] { "run-id" }, "list the audio samples (WAV + spectrogram) of the latest validation", new[] { O("out", "copy them to this folder on the CLI's machine (DIR/step-NNNNNNN/)"), O("step", "a validation step other than the latest") }),
        }),
        new Palette("loader", "data-loader nodes", new[]
        {
            new Command("loader", "list", Array.Empty<string>(), "loader members the coordinator plans with", Array.Empty<Option>()),
        }),
        new Palette("worker", "GPU workers", new[]
        {
            new Command("worker", "list", Array.Empty<string>(), "registered workers: id, rank in the current group, ring endpoint, CUDA", Array.Empty<Option>()),
        }),
        new Palette("node", "the node you are connected to", new[]
        {
            new Command("node", "info", Array.Empty<string>(), "address, roles, uptime, process, command host settings", Array.Empty<Option>()),
        }),
    };

    public static Palette? FindPalette(string name) => Palettes.FirstOrDefault(p => p.Name == name);

    public static Command? Find(string palette, string command) => FindPalette(palette)?.Commands.FirstOrDefault(c => c.Name == command);

    /// <summary>Options every remote command takes (handled by the CLI, never sent).</summary>
    public static readonly Option[] ClientOptions =
    {
        F("json", "machine-readable output: one JSON object per line"),
        O("token-file", "file holding the command-host token (else $HIGGS_CMD_TOKEN, else $HIGGS_CMD_TOKEN_FILE)"),
        F("tls", "connect with TLS (trusting the system's CAs)"),
        O("tls-ca", "trust this certificate (PEM or DER: the host's own or its CA); implies --tls"),
        O("tls-name", "name the host's certificate must carry (default: the host part of the target)"),
        O("timeout", "seconds to wait for a reply (default 30; watch/tail/logs --follow wait until done)"),
    };

    public static void WriteHelp(TextWriter w, string? palette = null, string? command = null)
    {
        if (palette is not null && command is not null && Find(palette, command) is { } c)
        {
            w.WriteLine($"higgs [host:port] {c.Usage}");
            w.WriteLine($"  {c.Help}");
            foreach (var o in c.Options) w.WriteLine($"  --{o.Name,-16} {o.Help}");
            WriteClientOptions(w);
            return;
        }
        if (palette is not null && FindPalette(palette) is { } p)
        {
            w.WriteLine($"{p.Name}: {p.Help}");
            foreach (var x in p.Commands) w.WriteLine($"  higgs [host:port] {x.Usage,-58} {x.Help}");
            WriteClientOptions(w);
            return;
        }
        w.WriteLine("Remote commands (sent to a node's command host; default target 127.0.0.1:9110 or $HIGGS_CMD_TARGET):");
        w.WriteLine("  higgs [host:port] <palette> <command> [args] [--options]");
        foreach (var x in Palettes) w.WriteLine($"  {x.Name,-8} {string.Join(" | ", x.Commands.Select(c2 => c2.Name))}   — {x.Help}");
        w.WriteLine("  'higgs help <palette>' or 'higgs <palette> <command> --help' for details.");
        w.WriteLine("Exit codes: 0 ok, 1 failed or refused, 2 usage, 3 cannot connect (or TLS), 4 unauthorized, 5 not found, 6 run stopped.");
    }

    private static void WriteClientOptions(TextWriter w)
    {
        w.WriteLine("  client options:");
        foreach (var o in ClientOptions) w.WriteLine($"  --{o.Name,-16} {o.Help}");
    }
}

/// <summary>Exit codes of remote commands (also the "code" of the final frame).</summary>
public static class ExitCodes
{
    public const int Ok = 0, Failed = 1, Usage = 2, Unreachable = 3, Unauthorized = 4, NotFound = 5, Stopped = 6;
}
