using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs adapter merge</c>.</summary>
public static class AdapterMergeCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("base", "DIR", "the base model folder (config.json + safetensors)"),
        Opt.Value("adapter", "DIR", "the LoRA adapter folder (PEFT layout)"),
        Opt.Value("out", "DIR", "where the merged checkpoint is written (not the base folder)"),
        Opt.Value("dtype", "bf16|fp32", "dtype of the merged weights (default: the base's stored dtype)"),
        Opt.Value("shard-gb", "N", "largest safetensors shard in GB (default 5)"),
    };
}
