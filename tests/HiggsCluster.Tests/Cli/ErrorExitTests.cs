using HiggsCluster.Cli;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Training.Engine;
using Xunit;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Cli;

/// <summary>The top-level mapping of any exception to one line and a documented exit code (issue 18, "no crash exits").</summary>
[Trait("Category", "CliGrammar")]
public sealed class ErrorExitTests
{
    [Fact]
    public void Refused_input_is_exit_2_and_a_failure_exit_1()
    {
        Assert.Equal(2, ErrorExit.CodeOf(new CliUsageException("x")));
        Assert.Equal(2, ErrorExit.CodeOf(new TrainConfigException("lora.targets", "x")));
        Assert.Equal(2, ErrorExit.CodeOf(new FileNotFoundException("x")));
        Assert.Equal(2, ErrorExit.CodeOf(new InvalidDataException("x")));
        Assert.Equal(1, ErrorExit.CodeOf(new InvalidOperationException("x")));
        Assert.Equal(1, ErrorExit.CodeOf(new OutOfMemoryException()));
    }

    private static Exception Thrown(Exception e)
    {
        try { throw e; }
        catch (Exception caught) { return caught; }
    }

    [Fact]
    public void A_multi_line_message_with_causes_becomes_one_line_without_frames()
    {
        var e = Thrown(new InvalidOperationException("outer\nsecond line", Thrown(new IOException("disk full"))));
        var err = new StringWriter();
        Assert.Equal(1, ErrorExit.Report(e, verbose: false, err));
        var line = Assert.Single(err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("higgs: outer second line: disk full", line);
        Assert.DoesNotContain("   at ", err.ToString());
        // a failure names the file that holds its trace, and the file holds it
        var file = line[(line.IndexOf("(details: ", StringComparison.Ordinal) + 10)..].TrimEnd(')');
        try { Assert.Contains("   at ", File.ReadAllText(file)); }
        finally { File.Delete(file); }
    }

    [Fact]
    public void A_refusal_has_no_trace_file_and_verbose_adds_the_trace()
    {
        var e = Thrown(new CliUsageException("train: --workers must be an integer"));
        var quiet = new StringWriter();
        Assert.Equal(2, ErrorExit.Report(e, verbose: false, quiet));
        Assert.Equal("higgs: train: --workers must be an integer", quiet.ToString().Trim());
        var loud = new StringWriter();
        Assert.Equal(2, ErrorExit.Report(e, verbose: true, loud));
        Assert.Contains("   at ", loud.ToString());
        Assert.True(ErrorExit.Verbose(new[] { "train", "--verbose" }));
    }
}
