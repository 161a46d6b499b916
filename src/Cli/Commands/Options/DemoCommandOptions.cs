using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs demo</c>.</summary>
public static class DemoCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("out", "DIR", "where the tiny model, data and run go (default runs/demo)"),
        Opt.Value("steps", "N", "training steps (default 100)"),
        Opt.Value("entries", "N", "dataset entries (default 24)"),
        Opt.Value("batch-size", "N", "samples per collated batch shown (default 4)"),
        Opt.Value("preset", "NAME", "collator preset"),
        Opt.Value("progress", "auto|bar|lines|off", "how training progress is shown (default auto)"),
        Opt.Value("samples", "N", "validation entries spoken at each validation (default 2)"),
        Opt.Value("workers", "N", "in-process cluster workers (default 1)"),
        Opt.Flag("engine", "train with the engine's own loop instead of the in-process cluster"),
        Opt.Flag("no-train", "stop after the data path"),
    };
}
