using System.CommandLine;
using System.CommandLine.Help;
using HiggsCluster.Cli.Commands.Options;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands;

public sealed class CliUsageException(string message) : Exception(message);

/// <summary>
/// Local verbs of the higgs tool. Each entry: words that select it, a one-line help, its declared options (one file per
/// verb under Options/), the handler, and whether free-form <c>--key=value</c> config overrides are taken.
/// </summary>
public static class CommandTable
{
    public sealed record Verb(string[] Words, string Help, Func<IEnumerable<Option>> Options, Func<CliArgs, TextWriter, TextWriter, int> Run, bool ConfigOverrides = false)
    {
        public string Name => string.Join(' ', Words);
    }

    public static readonly IReadOnlyList<Verb> Verbs = new List<Verb>
    {
        new(new[] { "adapter", "merge" }, "adapter merge --base DIR --adapter DIR --out DIR [--dtype bf16|fp32] [--shard-gb 5]   fold a LoRA adapter into a plain checkpoint", AdapterMergeCommandOptions.Declare, AdapterMergeCommand.Run),
        new(new[] { "adapter", "export" }, "adapter export --adapter DIR --out DIR --layout boson|transformers   rewrite an adapter's keys for the other Hugging Face layout of the base", AdapterExportCommandOptions.Declare, AdapterExportCommand.Run),
        new(new[] { "adapter", "interop-fixture" }, "adapter interop-fixture --out DIR   tiny base, adapter and merged checkpoint in both layouts, for scripts/check_peft_interop.py", AdapterInteropFixtureCommandOptions.Declare, AdapterInteropFixtureCommand.Run),
        new(new[] { "data", "encode" }, "data encode --manifest M --audio-tokenizer DIR [--cache DIR] [--data-root D]   pre-encode every audio into the code cache", DataEncodeCommandOptions.Declare, DataEncodeCommand.Run),
        new(new[] { "data", "validate" }, "data validate --manifest M [--manifest M2 ...] --tokenizer T [--max-tokens N] [--data-root D] | --config f.yaml [--base DIR] [--audio-tokenizer DIR]   check every entry (per corpus) and that the model folders are complete, one report", DataValidateCommandOptions.Declare, DataValidateCommand.Run),
        new(new[] { "demo" }, "demo [--out DIR] [--steps N] [--entries N] [--no-train] [--workers N | --engine]   tiny model + dataset, data path, then a short LoRA training run", DemoCommandOptions.Declare, DemoCommand.Run),
        new(new[] { "train" }, "train --config f.yaml [--key=value ...] [--resume latest|DIR] [--dry-run] [--help-keys] [--workers N | --engine | --gpus all|N|0,3,5]   LoRA fine-tuning; any other --key=value overrides that config key (list: --help-keys)", TrainCommandOptions.Declare, TrainCommand.Run, ConfigOverrides: true),
        new(new[] { "node" }, "node --role coordinator|loader|worker[,...] --port P --seeds host:port,... [--host H] [--stable-after S] [--heartbeat-pause S] [--join-timeout S] [--journal sqlite:PATH|postgresql:CS|memory] [--resume-wait S] [--fault kill:worker@step=K[,point=P]] [--gpus all|N|0,3,5 [--log-dir D]]   run a cluster node (--gpus: one worker process per GPU)", NodeCommandOptions.Declare, NodeCommand.Run),
        new(new[] { "generate" }, "generate --base DIR [--adapter DIR] --audio-tokenizer DIR [--tokenizer F] --text \"…\" [--scene \"…\"] [--reference-audio ref.wav --reference-text \"…\"] --out out.wav [--codes-out F] [--greedy | --temperature T --top-k K --top-p P] [--ras-window N --ras-max-repeat M] [--seed S] [--max-seconds S] [--device D]   text to speech with a base model and adapter", GenerateCommandOptions.Declare, GenerateCommand.Run),
        new(new[] { "cluster", "certs" }, Security.ClusterCertsCommand.Help, ClusterCertsCommandOptions.Declare, Security.ClusterCertsCommand.Run),
        new(new[] { "golden", "check" }, "golden check [--root DIR ...] [--area NAME ...]   run the parity harness", GoldenCheckCommandOptions.Declare, GoldenCheckCommand.Run),
    };

    public static int Dispatch(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            if (args.Length > 1) return Pbm.PbmCommand.Run(args, stdout, stderr); // help <palette> [command]
            stdout.WriteLine("higgs — Higgs Audio v2 LoRA fine-tuning");
            stdout.WriteLine();
            stdout.WriteLine("Local commands (each takes --help):");
            foreach (var v in Verbs) stdout.WriteLine("  higgs " + v.Help);
            stdout.WriteLine();
            Pbm.CommandCatalog.WriteHelp(stdout);
            stdout.WriteLine("Local commands exit 0 on success, 1 when a check or run failed, 2 when the command line or its input was refused;");
            stdout.WriteLine("an error is one line on stderr (--verbose or HIGGS_VERBOSE=1 adds the stack trace).");
            return 0;
        }
        if (Pbm.PbmCommand.IsRemote(args) && args is not ["cluster", "certs", ..]) return Pbm.PbmCommand.Run(args, stdout, stderr);
        var (verb, parsed) = Parse(args, stdout);
        if (verb is null) return 0; // help was written
        return verb.Run(parsed!, stdout, stderr);
    }

    /// <summary>
    /// The verb the words select and what it was given; (null, null) after writing help to <paramref name="help"/>.
    /// Unknown verbs, unknown options, a missing value or a stray word are a <see cref="CliUsageException"/>.
    /// </summary>
    public static (Verb? Verb, CliArgs? Args) Parse(string[] args, TextWriter? help = null)
    {
        var (root, commands) = Grammar();
        var r = Parsing.Parse(root, args);
        if (Parsing.WroteHelp(r, help ?? TextWriter.Null)) return (null, null);
        var selected = Parsing.Selected(r);
        if (!commands.TryGetValue(selected, out var verb))
        {
            var unknown = r.UnmatchedTokens.FirstOrDefault() ?? string.Join(' ', args.Take(2));
            throw new CliUsageException(selected == root || r.UnmatchedTokens.Count > 0
                ? $"unknown command '{unknown}' (try 'higgs help')"
                : $"'{selected.Name}' needs a command: {string.Join(", ", selected.Subcommands.Select(c => c.Name))} (try 'higgs {selected.Name} --help')");
        }
        Parsing.ThrowOnError(r, verb.Name);
        return (verb, CliArgs.From(r, selected, verb.Name));
    }

    /// <summary>The parse of one verb's words (tests and callers that build a verb's arguments).</summary>
    public static CliArgs ArgsOf(params string[] args) =>
        Parse(args).Args ?? throw new CliUsageException("help was asked for");

    private static (Command Root, Dictionary<Command, Verb> Commands) Grammar()
    {
        var root = new Command("higgs");
        var commands = new Dictionary<Command, Verb>();
        foreach (var v in Verbs)
        {
            var parent = root;
            foreach (var word in v.Words.SkipLast(1))
            {
                var group = parent.Subcommands.FirstOrDefault(c => c.Name == word);
                if (group is null) { group = new Command(word) { new HelpOption() }; parent.Add(group); }
                parent = group;
            }
            var cmd = new Command(v.Words[^1], v.Help[(v.Help.IndexOf("   ", StringComparison.Ordinal) + 3)..].Trim())
            {
                TreatUnmatchedTokensAsErrors = !v.ConfigOverrides,
            };
            cmd.Add(new HelpOption());
            foreach (var o in v.Options()) cmd.Add(o);
            parent.Add(cmd);
            commands[cmd] = v;
        }
        return (root, commands);
    }
}
