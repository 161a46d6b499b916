namespace HiggsCluster.Cli.Commands;

public sealed class CliUsageException(string message) : Exception(message);

/// <summary>Local verbs of the higgs tool. Each entry: words that select it, a one-line help, the handler.</summary>
public static class CommandTable
{
    public sealed record Verb(string[] Words, string Help, Func<CliArgs, TextWriter, TextWriter, int> Run);

    public static readonly IReadOnlyList<Verb> Verbs = new List<Verb>
    {
        new(new[] { "adapter", "merge" }, "adapter merge --base DIR --adapter DIR --out DIR [--dtype bf16|fp32] [--shard-gb 5]   fold a LoRA adapter into a plain checkpoint", AdapterMergeCommand.Run),
        new(new[] { "adapter", "export" }, "adapter export --adapter DIR --out DIR --layout boson|transformers   rewrite an adapter's keys for the other Hugging Face layout of the base", AdapterExportCommand.Run),
        new(new[] { "adapter", "interop-fixture" }, "adapter interop-fixture --out DIR   tiny base, adapter and merged checkpoint in both layouts, for scripts/check_peft_interop.py", AdapterInteropFixtureCommand.Run),
        new(new[] { "data", "encode" }, "data encode --manifest M --audio-tokenizer DIR [--cache DIR] [--data-root D]   pre-encode every audio into the code cache", DataEncodeCommand.Run),
        new(new[] { "data", "validate" }, "data validate --manifest M [--manifest M2 ...] --tokenizer T [--max-tokens N] [--data-root D] | --config f.yaml [--base DIR] [--audio-tokenizer DIR]   check every entry (per corpus) and that the model folders are complete, one report", DataValidateCommand.Run),
        new(new[] { "demo" }, "demo [--out DIR] [--steps N] [--entries N] [--no-train] [--workers N | --engine]   tiny model + dataset, data path, then a short LoRA training run", DemoCommand.Run),
        new(new[] { "train" }, "train --config f.yaml [--key=value ...] [--resume latest|DIR] [--dry-run] [--help-keys] [--workers N | --engine | --gpus all|N|0,3,5]   LoRA fine-tuning", TrainCommand.Run),
        new(new[] { "node" }, "node --role coordinator|loader|worker[,...] --port P --seeds host:port,... [--host H] [--stable-after S] [--journal sqlite:PATH|postgresql:CS|memory] [--resume-wait S] [--fault kill:worker@step=K[,point=P]] [--gpus all|N|0,3,5 [--log-dir D]]   run a cluster node (--gpus: one worker process per GPU)", NodeCommand.Run),
        new(new[] { "generate" }, "generate --base DIR [--adapter DIR] --audio-tokenizer DIR [--tokenizer F] --text \"…\" [--scene \"…\"] [--reference-audio ref.wav --reference-text \"…\"] --out out.wav [--codes-out F] [--greedy | --temperature T --top-k K --top-p P] [--ras-window N --ras-max-repeat M] [--seed S] [--max-seconds S] [--device D]   text to speech with a base model and adapter", GenerateCommand.Run),
        new(new[] { "cluster", "certs" }, Security.ClusterCertsCommand.Help, Security.ClusterCertsCommand.Run),
        new(new[] { "golden", "check" }, "golden check [--root DIR ...] [--area NAME]   run the parity harness", GoldenCheckCommand.Run),
    };

    public static int Dispatch(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            if (args.Length > 1) return Pbm.PbmCommand.Run(args, stdout, stderr); // help <palette> [command]
            stdout.WriteLine("higgs — Higgs Audio v2 LoRA fine-tuning");
            stdout.WriteLine();
            stdout.WriteLine("Local commands:");
            foreach (var v in Verbs) stdout.WriteLine("  higgs " + v.Help);
            stdout.WriteLine();
            Pbm.CommandCatalog.WriteHelp(stdout);
            return 0;
        }
        if (Pbm.PbmCommand.IsRemote(args) && args is not ["cluster", "certs", ..]) return Pbm.PbmCommand.Run(args, stdout, stderr);
        foreach (var v in Verbs.OrderByDescending(v => v.Words.Length))
        {
            if (args.Length >= v.Words.Length && v.Words.SequenceEqual(args.Take(v.Words.Length)))
                return v.Run(CliArgs.Parse(args.Skip(v.Words.Length).ToArray()), stdout, stderr);
        }
        throw new CliUsageException($"unknown command '{string.Join(' ', args.Take(2))}' (try 'higgs help')");
    }
}

/// <summary>--key value / --key=value / --flag options plus positional words; repeated keys keep every value.</summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = new();

    public static CliArgs Parse(string[] args)
    {
        var a = new CliArgs();
        for (int i = 0; i < args.Length; i++)
        {
            var s = args[i];
            if (!s.StartsWith("--", StringComparison.Ordinal)) { a.Positional.Add(s); continue; }
            string key, value;
            int eq = s.IndexOf('=');
            if (eq > 0) { key = s[2..eq]; value = s[(eq + 1)..]; }
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) { key = s[2..]; value = args[++i]; }
            else { key = s[2..]; value = "true"; }
            if (!a._options.TryGetValue(key, out var l)) a._options[key] = l = new List<string>();
            l.Add(value);
        }
        return a;
    }

    public IReadOnlyList<string> All(string key) => _options.TryGetValue(key, out var l) ? l : Array.Empty<string>();
    public string? Get(string key) => _options.TryGetValue(key, out var l) ? l[^1] : null;
    public bool Flag(string key) => Get(key) is "true" or "1" or "yes";
    public int Int(string key, int fallback) =>
        Get(key) is { } s ? (int.TryParse(s, out var v) ? v : throw new CliUsageException($"--{key} must be an integer, got '{s}'")) : fallback;
    public IEnumerable<string> Keys => _options.Keys;

    /// <summary>The value of a required option (a bare flag does not count), or a usage error naming the verb and what is expected.</summary>
    public string Required(string verb, string key, string what = "DIR") =>
        Get(key) is { Length: > 0 } v && v != "true" ? v : throw new CliUsageException($"{verb}: --{key} {what} is required");
}
