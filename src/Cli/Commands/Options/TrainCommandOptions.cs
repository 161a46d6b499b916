using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>
/// Options of <c>higgs train</c>. Any other <c>--key=value</c> is a config override (<c>--lr=1e-4</c>,
/// <c>--train.lr=1e-4</c>): the grammar leaves it unmatched and the config layer refuses a key it does not know.
/// </summary>
public static class TrainCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("config", "FILE", "the run's YAML config"),
        Opt.Value("resume", "latest|DIR", "continue from the newest checkpoint under output_dir, or from a checkpoint folder"),
        Opt.Flag("dry-run", "load, run the longest batch once, report memory, and stop"),
        Opt.Flag("help-keys", "list every config key with its help and default"),
        Opt.Value("workers", "N", "in-process cluster workers (default train.ranks)"),
        Opt.Flag("engine", "train with the engine's own loop instead of the in-process cluster"),
        Opt.Value("gpus", "all|N|0,3,5", "one worker process per GPU"),
    };
}
