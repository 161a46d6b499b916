using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Harness;

internal static class RunSpecs
{
    /// <summary>The spec with its options changed (the plan's numbers are the options').</summary>
    public static RunSpec WithOptions(this RunSpec spec, Func<RunOptions, RunOptions> change) => spec with { Options = change(spec.Options) };
}
