using HiggsCluster.Training;
using HiggsCluster.Training.Goldens;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs golden check`: one line per run, then "N passed, N failed"; non-zero exit on any failure.</summary>
public static class GoldenCheckCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var roots = GoldenHarness.ResolveRoots(args.All("root"), RepoPaths.DefaultGoldens);
        var areas = GoldenAreas.All(GoldenEnvironment.Discover(RepoPaths.FindRoot() ?? Environment.CurrentDirectory));
        int passed = 0, failed = 0, skipped = 0;
        foreach (var run in GoldenHarness.Enumerate(roots, args.Get("area")))
        {
            var r = GoldenHarness.Check(run, areas);
            stdout.WriteLine(r.Line);
            switch (r.Status)
            {
                case GoldenStatus.Pass: passed++; break;
                case GoldenStatus.Fail: failed++; break;
                default: skipped++; break;
            }
        }
        stdout.WriteLine($"{passed} passed, {failed} failed" + (skipped > 0 ? $", {skipped} skipped" : ""));
        return failed > 0 ? 1 : 0;
    }
}
