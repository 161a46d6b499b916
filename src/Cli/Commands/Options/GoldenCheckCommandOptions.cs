using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs golden check</c>.</summary>
public static class GoldenCheckCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Many("root", "DIR", "a golden root (default: the repository's goldens)"),
        Opt.Many("area", "NAME", "only this area"),
    };
}
