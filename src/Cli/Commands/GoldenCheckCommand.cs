using HiggsCluster.Cli.Grammar;
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
        // every --area given is checked (none: all); an area that names nothing is refused rather than passing as "0 failed"
        var wanted = args.All("area");
        var runs = wanted.Count == 0 ? GoldenHarness.Enumerate(roots).ToList() : wanted.Distinct().SelectMany(a => GoldenHarness.Enumerate(roots, a)).ToList();
        foreach (var a in wanted.Where(a => runs.All(r => r.Area != a)))
            throw new CliUsageException($"golden check: --area {a}: no golden runs of that area under {string.Join(", ", roots)}");
        foreach (var run in runs)
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
