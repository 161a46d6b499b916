using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // remote commands never load libtorch: a call should cost a connect, not a native-library load
        if (!Pbm.PbmCommand.IsRemote(args) && args is not ["help", ..] and not []) HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
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
