using System.CommandLine;
using System.CommandLine.Help;
using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli.Grammar;

/// <summary>
/// One parse for every verb, local and remote: no response files (a value such as <c>@speaker</c> stays a value), no
/// directives; a grammar error is a <see cref="CliUsageException"/> with the library's first message (exit 2).
/// </summary>
public static class Parsing
{
    private static readonly ParserConfiguration Config = new() { ResponseFileTokenReplacer = null };

    public static ParseResult Parse(Command root, IReadOnlyList<string> args) => root.Parse(args, Config);

    /// <summary>Whether the parse asked for help; then the help was written and the caller exits 0.</summary>
    public static bool WroteHelp(ParseResult r, TextWriter stdout)
    {
        if (r.Action is not HelpAction) return false;
        r.Invoke(new InvocationConfiguration { Output = stdout, Error = TextWriter.Null, EnableDefaultExceptionHandler = false });
        return true;
    }

    public static void ThrowOnError(ParseResult r, string? prefix = null)
    {
        if (r.Errors.Count > 0) throw new CliUsageException((prefix is null ? "" : prefix + ": ") + r.Errors[0].Message);
    }

    /// <summary>The innermost command the words selected.</summary>
    public static Command Selected(ParseResult r) => r.CommandResult.Command;
}
