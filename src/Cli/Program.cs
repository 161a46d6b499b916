using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
        try
        {
            return CommandTable.Dispatch(args, Console.Out, Console.Error);
        }
        catch (CliUsageException e)
        {
            Console.Error.WriteLine($"higgs: {e.Message}");
            return 2;
        }
    }
}
