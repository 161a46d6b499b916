using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Planning;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>A submitted run's mixed dataset is read too: every corpus's manifest and data root must stay inside the host's roots.</summary>
[Trait("Category", "Cli")]
public sealed class MixedPathPolicyTests
{
    [Fact]
    public void Every_corpus_of_a_submitted_run_is_checked_against_the_roots()
    {
        using var tmp = new TempDir();
        var data = Directory.CreateDirectory(tmp.File("data")).FullName;
        var outside = Directory.CreateDirectory(tmp.File("outside")).FullName;
        var output = Directory.CreateDirectory(tmp.File("out")).FullName;
        var host = new CommandHostOptions { DataRoots = new[] { data }, OutputRoots = new[] { output } };
        RunOptions Config(params Corpus[] corpora) => new() { Manifests = corpora, OutputDir = output };

        Assert.Empty(RunCommands.PathViolations(Config(new Corpus(Path.Combine(data, "a.jsonl"), 1, data)), host));
        var problems = RunCommands.PathViolations(Config(new Corpus(Path.Combine(data, "a.jsonl"), 1), new Corpus(Path.Combine(outside, "b.jsonl"), 1, outside)), host);
        Assert.Equal(2, problems.Count);
        Assert.Contains(problems, p => p.Contains("data.manifests[1].path"));
        Assert.Contains(problems, p => p.Contains("data.manifests[1].data_root"));
        Assert.Contains("is not an absolute path", Assert.Single(RunCommands.PathViolations(Config(new Corpus("a.jsonl", 1)), host)));
    }
}
