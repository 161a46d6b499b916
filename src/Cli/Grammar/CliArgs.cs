using System.CommandLine;
using System.CommandLine.Help;
using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli.Grammar;

/// <summary>
/// What one verb was given, read from the library's parse of it: only declared options exist (asking for another is a
/// programming error), positional arguments in order, and for verbs that take config overrides (<c>train</c>,
/// <c>run submit</c>) the free-form <c>--key=value</c> pairs the grammar left unmatched.
/// </summary>
public sealed class CliArgs
{
    private readonly ParseResult _result;
    private readonly Dictionary<string, Option> _options;

    public IReadOnlyList<string> Positional { get; }
    /// <summary>Free-form <c>--key=value</c> (or <c>--key value</c>, or a bare <c>--key</c> meaning true) in the order typed.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Overrides { get; }

    private CliArgs(ParseResult result, Command verb, IReadOnlyList<KeyValuePair<string, string>> overrides)
    {
        _result = result;
        _options = verb.Options.Where(o => o is not HelpOption).ToDictionary(Opt.Key, StringComparer.Ordinal);
        Positional = verb.Arguments.SelectMany(a => result.GetResult(a)?.Tokens.Select(t => t.Value) ?? Enumerable.Empty<string>()).ToArray();
        Overrides = overrides;
    }

    public static CliArgs From(ParseResult result, Command verb, string verbName)
    {
        var overrides = verb.TreatUnmatchedTokensAsErrors ? Array.Empty<KeyValuePair<string, string>>() : FreeForm(result.UnmatchedTokens, verbName);
        return new CliArgs(result, verb, overrides);
    }

    /// <summary>Config overrides as typed: <c>--key=value</c>, <c>--key value</c> or a bare <c>--key</c> (true); a bare word is refused.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> FreeForm(IReadOnlyList<string> tokens, string verbName)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (!t.StartsWith("--", StringComparison.Ordinal) || t.Length == 2)
                throw new CliUsageException($"{verbName}: unexpected argument '{t}' (config overrides are --key=value)");
            int eq = t.IndexOf('=');
            if (eq > 2) pairs.Add(new(t[2..eq], t[(eq + 1)..]));
            else if (i + 1 < tokens.Count && !tokens[i + 1].StartsWith("--", StringComparison.Ordinal)) pairs.Add(new(t[2..], tokens[++i]));
            else pairs.Add(new(t[2..], "true"));
        }
        return pairs;
    }

    private Option Declared(string key) =>
        _options.TryGetValue(key, out var o) ? o : throw new InvalidOperationException($"option --{key} is not declared for this verb");

    /// <summary>Every value given for the option, in order (a flag gives "true" or "false").</summary>
    public IReadOnlyList<string> All(string key)
    {
        var o = Declared(key);
        var r = _result.GetResult(o);
        if (r is null || r.Implicit) return Array.Empty<string>();
        if (o is Option<bool>) return new[] { r.GetValueOrDefault<bool>() ? "true" : "false" };
        return r.Tokens.Select(t => t.Value).ToArray();
    }

    public string? Get(string key) => All(key) is { Count: > 0 } l ? l[^1] : null;
    public bool Flag(string key) => Get(key) == "true";
    public int Int(string key, int fallback) =>
        Get(key) is { } s ? (int.TryParse(s, out var v) ? v : throw new CliUsageException($"--{key} must be an integer, got '{s}'")) : fallback;

    /// <summary>The declared options that were given.</summary>
    public IEnumerable<string> Keys => _options.Keys.Where(k => All(k).Count > 0);

    /// <summary>The value of a required option, or a usage error naming the verb and what is expected.</summary>
    public string Required(string verb, string key, string what = "DIR") =>
        Get(key) is { Length: > 0 } v ? v : throw new CliUsageException($"{verb}: --{key} {what} is required");
}
