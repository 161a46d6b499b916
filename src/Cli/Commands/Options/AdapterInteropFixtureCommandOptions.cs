using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs adapter interop-fixture</c>.</summary>
public static class AdapterInteropFixtureCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("out", "DIR", "where the fixture folders are written"),
    };
}
