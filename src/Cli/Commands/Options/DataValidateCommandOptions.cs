using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs data validate</c>.</summary>
public static class DataValidateCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Many("manifest", "FILE", "a manifest to check (each counted on its own)"),
        Opt.Value("tokenizer", "FILE", "the text tokenizer (tokenizer.json)"),
        Opt.Value("max-tokens", "N", "longest sample in tokens"),
        Opt.Value("data-root", "DIR", "folder every audio path must resolve under"),
        Opt.Value("config", "FILE", "check the corpora, tokenizer, limits and roots of this training config instead"),
        Opt.Value("base", "DIR", "also check that the base model folder is complete; its config.json gives the codebook count of the length estimate (default 8)"),
        Opt.Value("audio-tokenizer", "DIR", "also check that the audio tokenizer folder is complete"),
    };
}
