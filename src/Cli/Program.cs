using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // libtorch reads this when it loads (on the first tensor call): keep its hardware notices (NNPACK) off the console
        if (Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") is null)
            Environment.SetEnvironmentVariable("TORCH_CPP_LOG_LEVEL", "ERROR");
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
