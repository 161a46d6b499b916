using HiggsCluster.Cli.Grammar;
using HiggsCluster.Training.Lora;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs adapter interop-fixture --out DIR`: writes what scripts/check_peft_interop.py reads (tiny base, adapter and
/// merged checkpoint per layout), so the PEFT check can run on any machine with Python and nothing else of ours.
/// </summary>
public static class AdapterInteropFixtureCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var outDir = args.Required("adapter interop-fixture", "out");
        foreach (var dir in InteropFixture.Write(outDir))
            stdout.WriteLine($"adapter interop-fixture: {dir}/{{base,adapter,merged}}");
        stdout.WriteLine($"check with: python3 scripts/check_peft_interop.py --fixture {outDir}");
        return 0;
    }
}
