using HiggsCluster.Cli.Commands;
using HiggsCluster.Training.Engine;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli;

/// <summary>
/// The last line of defence of every verb: any exception becomes one line on stderr and a documented exit code, 2 when
/// the command line or its input was refused and 1 when the work failed. The stack trace is shown only with
/// <c>--verbose</c> (or HIGGS_VERBOSE=1); otherwise it is written to a file in the temp folder that the line names.
/// </summary>
public static class ErrorExit
{
    public const string VerboseVariable = "HIGGS_VERBOSE";
    public const int Failed = 1, Usage = 2;
    /// <summary>`higgs node` only: the cluster downed this node (it did not leave on its own).</summary>
    public const int Downed = 3;
    /// <summary>
    /// `higgs node` only: a TLS handshake this node started was refused (Akka stops a node whose outbound handshake
    /// fails: a certificate that is not the cluster CA's, on either side).
    /// </summary>
    public const int TlsRefused = 4;

    /// <summary>Refusals of input: the command line, a config, a file that is missing, unreadable or malformed.</summary>
    public static int CodeOf(Exception e) => e switch
    {
        CliUsageException or TrainConfigException => Usage,
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException => Usage,
        InvalidDataException or FormatException or System.Text.Json.JsonException => Usage,
        ArgumentException => Usage,
        _ => Failed,
    };

    /// <summary>The exception's message on one line (inner causes appended), never a stack frame.</summary>
    public static string OneLine(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null && parts.Count < 3; x = x.InnerException)
        {
            var m = x is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0].Message : x.Message;
            if (x is AggregateException { InnerExceptions.Count: 1 } && x.InnerException is not null) continue;
            if (!string.IsNullOrWhiteSpace(m) && !parts.Contains(m)) parts.Add(m);
        }
        if (parts.Count == 0) parts.Add(e.GetType().Name);
        var line = string.Join(": ", parts);
        return string.Join(' ', line.Split(new[] { '\r', '\n' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    public static bool Verbose(IReadOnlyList<string> args) =>
        args.Contains("--verbose") || Environment.GetEnvironmentVariable(VerboseVariable) is "1" or "true" or "yes";

    /// <summary>Writes the line (and the trace where asked) and returns the exit code.</summary>
    public static int Report(Exception e, bool verbose, TextWriter stderr)
    {
        if (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];
        int code = CodeOf(e);
        // a refused command line needs no trace; a failure keeps one for a bug report
        string? traceFile = code == Failed && !verbose ? WriteTrace(e) : null;
        stderr.WriteLine("higgs: " + OneLine(e) + (traceFile is null ? "" : $" (details: {traceFile})"));
        if (verbose) stderr.WriteLine(e.ToString());
        return code;
    }

    private static string? WriteTrace(Exception e)
    {
        try
        {
            var path = Path.Combine(Path.GetTempPath(), $"higgs-error-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
            // CreateNew: never follows or overwrites a file someone else placed under that name
            using var w = new StreamWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write));
            w.WriteLine(string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            w.WriteLine(e.ToString());
            return path;
        }
        catch (Exception) { return null; }
    }
}
