using System.CommandLine;

namespace HiggsCluster.Cli.Grammar;

/// <summary>
/// The three kinds of option every verb declares, local or remote: a value (<c>--base DIR</c> or <c>--base=DIR</c>, at
/// most once), a flag (<c>--greedy</c>; it never takes the next word, only an explicit true/false) and a repeatable
/// value (<c>--area whisper --area collator</c>, one value per occurrence).
/// </summary>
public static class Opt
{
    public static Option<string> Value(string name, string valueName, string help) =>
        new("--" + name) { HelpName = valueName, Description = help };

    public static Option<bool> Flag(string name, string help) =>
        new("--" + name) { Description = help, Arity = ArgumentArity.ZeroOrOne };

    public static Option<string[]> Many(string name, string valueName, string help) =>
        new("--" + name) { HelpName = valueName, Description = help + " (repeatable)", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };

    /// <summary>The name an option is looked up by: without the leading dashes.</summary>
    public static string Key(Option o) => o.Name.TrimStart('-');
}
