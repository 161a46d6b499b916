using HiggsCluster.Cli.Commands;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>What `higgs train` prints around a run: key help with one default each, a bounded warning list that says how many it left out.</summary>
[Trait("Category", "Cli")]
public sealed class TrainCommandOutputTests
{
    [Fact]
    public void Help_keys_show_each_default_once()
    {
        var o = new StringWriter();
        Assert.Equal(0, TrainCommand.Run(CommandTable.ArgsOf("train", "--help-keys"), o, new StringWriter()));
        var lines = o.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.Equal(1, l.Split("(default ").Length - 1));
        var cache = Assert.Single(lines, l => l.TrimStart().StartsWith("data.code_cache ", StringComparison.Ordinal));
        Assert.EndsWith("(default OUTPUT/code-cache)", cache);
        Assert.EndsWith("(default none)", TrainCommand.HelpLine("x", "a folder", ""));
    }

    [Fact]
    public void Warnings_past_the_first_twenty_are_counted()
    {
        var warnings = Enumerable.Range(1, 23).Select(i => $"row {i}: unreadable").ToList();
        var lines = TrainCommand.WarningLines(warnings).ToList();
        Assert.Equal(21, lines.Count);
        Assert.Equal("warning: row 20: unreadable", lines[19]);
        Assert.Equal("warning: … and 3 more (all in report.md)", lines[20]);
        Assert.Equal(20, TrainCommand.WarningLines(warnings.Take(20).ToList()).Count()); // none left out: nothing to count
    }
}
