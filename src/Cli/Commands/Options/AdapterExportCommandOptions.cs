using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs adapter export</c>.</summary>
public static class AdapterExportCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("adapter", "DIR", "the LoRA adapter folder"),
        Opt.Value("out", "DIR", "where the rewritten adapter goes"),
        Opt.Value("layout", "boson|transformers", "the Hugging Face layout of the base the adapter is for"),
    };
}
