using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs cluster certs</c>.</summary>
public static class ClusterCertsCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("out", "DIR", "folder of the cluster CA and the node certificates"),
        Opt.Many("nodes", "a,b,c", "node names to issue a certificate for"),
    };
}
