using Akka.Hosting;
using HiggsCluster.Cli.Node;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HiggsCluster.Cli.Commands;

/// <summary>Runs one cluster node until SIGTERM/Ctrl-C (graceful leave) or until the cluster downs it.</summary>
public static class NodeCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddEnvironmentVariables("HIGGS_");
        var options = NodeOptions.From(builder.Configuration, args);
        if (options.Threads > 0) TorchSharp.torch.set_num_threads(options.Threads);
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddAkka(options.SystemName, (b, _) => b.AddHiggsNode(options, stdout).AddHiggsRoleActors(options));
        using var host = builder.Build();
        stderr.WriteLine($"higgs node: {string.Join(',', options.Roles)} on {options.Host}:{options.Port}, seeds {string.Join(',', options.Seeds)}");
        host.Run();
        return 0;
    }
}
