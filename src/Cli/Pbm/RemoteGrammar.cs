using System.CommandLine;
using System.CommandLine.Help;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Pbm;

/// <summary>
/// The remote verbs' grammar, built from <see cref="CommandCatalog"/> with the same option kinds and rules as the local
/// verbs: the CLI parses with it (plus the client options, which may stand anywhere) before sending, and the command
/// host parses what it received with it again (without the client options, which are never sent).
/// </summary>
public static class RemoteGrammar
{
    /// <summary>What the words asked for: help (of the root, a palette or a command), or a command with its arguments.</summary>
    public sealed record Parsed(CommandCatalog.Palette? Palette, CommandCatalog.Command? Command, CliArgs? Args, bool Help, ParseResult Result);

    /// <summary>The client options given (name without dashes → value; a flag → "true").</summary>
    public static Dictionary<string, string> ClientOptions(ParseResult r)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var o in r.RootCommandResult.Command.Options.Where(o => o is not HelpOption))
        {
            if (r.GetResult(o) is not { Implicit: false } res) continue;
            if (o is Option<bool> f) { if (r.GetValue(f)) d[Opt.Key(o)] = "true"; }
            else if (res.Tokens.Count > 0) d[Opt.Key(o)] = res.Tokens[^1].Value;
        }
        return d;
    }

    public static Parsed ParseClient(IReadOnlyList<string> words)
    {
        var (root, map) = Build(forHost: false);
        var r = Parsing.Parse(root, words);
        var selected = Parsing.Selected(r);
        map.TryGetValue(selected, out var entry);
        var palette = entry.Palette ?? CommandCatalog.FindPalette(selected.Name);
        bool help = r.Action is HelpAction || words.Skip(1).Contains("help");
        if (entry.Command is null)
        {
            if (palette is null)
                return help || r.UnmatchedTokens.Count == 0 ? new Parsed(null, null, null, true, r)
                    : throw new CliUsageException($"unknown palette '{r.UnmatchedTokens[0]}' (try 'higgs help')");
            if (help || r.UnmatchedTokens.Count == 0) return new Parsed(palette, null, null, true, r);
            throw new CliUsageException($"unknown command '{palette.Name} {r.UnmatchedTokens[0]}' (try 'higgs help {palette.Name}')");
        }
        if (help) return new Parsed(palette, entry.Command, null, true, r);
        Parsing.ThrowOnError(r, $"{entry.Command.Palette} {entry.Command.Name}");
        return new Parsed(palette, entry.Command, CliArgs.From(r, selected, $"{entry.Command.Palette} {entry.Command.Name}"), false, r);
    }

    /// <summary>The host's parse of a request's argv (palette, command, words): the arguments, or the one-line refusal.</summary>
    public static (CommandCatalog.Command? Command, CliArgs? Args, string? Refusal) ParseHost(IReadOnlyList<string> argv)
    {
        if (argv.Count < 2 || CommandCatalog.Find(argv[0], argv[1]) is not { } command)
            return (null, null, $"unknown command '{string.Join(' ', argv.Take(2))}'");
        var (root, map) = Build(forHost: true);
        var r = Parsing.Parse(root, argv);
        var selected = Parsing.Selected(r);
        if (!map.TryGetValue(selected, out var entry) || entry.Command != command)
            return (null, null, $"unknown command '{string.Join(' ', argv.Take(2))}'");
        if (r.Errors.Count > 0) return (command, null, $"{command.Palette} {command.Name}: {r.Errors[0].Message}");
        try { return (command, CliArgs.From(r, selected, $"{command.Palette} {command.Name}"), null); }
        catch (CliUsageException e) { return (command, null, e.Message); }
    }

    /// <summary>The words the host is sent for a parsed command: its arguments, then its options as --name [value].</summary>
    public static List<string> Words(CommandCatalog.Command c, CliArgs a)
    {
        var sent = new List<string>(a.Positional);
        foreach (var o in c.Options)
        {
            if (o.IsFlag) { if (a.Flag(o.Name)) sent.Add("--" + o.Name); }
            else foreach (var v in a.All(o.Name)) { sent.Add("--" + o.Name); sent.Add(v); }
        }
        return sent;
    }

    private static (Command Root, Dictionary<Command, (CommandCatalog.Palette? Palette, CommandCatalog.Command? Command)> Map) Build(bool forHost)
    {
        var root = new Command("higgs");
        var map = new Dictionary<Command, (CommandCatalog.Palette?, CommandCatalog.Command?)>();
        if (!forHost)
        {
            root.Add(new HelpOption());
            // client options are taken wherever they stand, before or after the palette and command
            foreach (var o in CommandCatalog.ClientOptions)
            {
                Option option = o.IsFlag ? Opt.Flag(o.Name, o.Help) : Opt.Value(o.Name, "V", o.Help);
                option.Recursive = true;
                root.Add(option);
            }
        }
        foreach (var p in CommandCatalog.Palettes)
        {
            var pc = new Command(p.Name, p.Help);
            map[pc] = (p, null);
            foreach (var c in p.Commands)
            {
                var cc = new Command(c.Name, c.Help);
                foreach (var a in c.Args)
                    cc.Add(new Argument<string>(a.TrimEnd('?')) { Arity = a.EndsWith('?') ? ArgumentArity.ZeroOrOne : ArgumentArity.ExactlyOne });
                foreach (var o in c.Options) cc.Add(o.IsFlag ? Opt.Flag(o.Name, o.Help) : Opt.Value(o.Name, "V", o.Help));
                if (c is { Palette: "run", Name: "submit" })
                {
                    // the CLI takes config overrides as `higgs train` does and sends them resolved; the host takes only those
                    if (forHost) cc.Add(Opt.Many(RunCommands.ResolvedOption, "KEY=VALUE", "a resolved config key"));
                    else cc.TreatUnmatchedTokensAsErrors = false;
                }
                pc.Add(cc);
                map[cc] = (p, c);
            }
            root.Add(pc);
        }
        return (root, map);
    }
}
