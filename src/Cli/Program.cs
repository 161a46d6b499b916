using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        bool verbose = ErrorExit.Verbose(args);
        args = args.Where(a => a != "--verbose").ToArray();
        // an exception on another thread (an actor, a timer) still ends in one line and exit 1, not a runtime trace
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            if (e.ExceptionObject is Exception ex) ErrorExit.Report(ex, verbose, Console.Error);
            Console.Error.Flush();
            Environment.Exit(ErrorExit.Failed);
        };
        try
        {
            // remote commands never load libtorch: a call should cost a connect, not a native-library load
            if (!Pbm.PbmCommand.IsRemote(args) && args is not ["help", ..] and not []) HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
            return CommandTable.Dispatch(args, Console.Out, Console.Error);
        }
        catch (Exception e)
        {
            Console.Out.Flush();
            return ErrorExit.Report(e, verbose, Console.Error);
        }
    }
}
