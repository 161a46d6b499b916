using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs data encode</c>.</summary>
public static class DataEncodeCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("manifest", "FILE", "the manifest (JSONL or JSON array)"),
        Opt.Value("audio-tokenizer", "DIR", "the audio tokenizer folder"),
        Opt.Value("cache", "DIR", "the code cache (default: code-cache beside the manifest)"),
        Opt.Value("data-root", "DIR", "folder every audio path must resolve under (default: the manifest's folder)"),
    };
}
