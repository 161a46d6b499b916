using System.Net.Sockets;
using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;

namespace HiggsCluster.Cli.CommandHost;

public static class CommandHostHosting
{
    /// <summary>
    /// Starts the node's command host once the ActorSystem is up and stops it in coordinated shutdown. Prints
    /// <c>HIGGS_CMD listening=host:port tls=on|off</c> (or why it is off) and one <c>HIGGS_CMD refused …</c> line
    /// per refused request to <paramref name="statusOut"/>; refusals also go to the Akka log.
    /// </summary>
    public static AkkaConfigurationBuilder AddCommandHost(this AkkaConfigurationBuilder b, CommandHostOptions? o, TextWriter? statusOut)
    {
        if (o is null) return b;
        return b.WithActors((system, registry) =>
        {
            void Print(string line)
            {
                if (statusOut is null) return;
                lock (statusOut) { statusOut.WriteLine("HIGGS_CMD " + line); statusOut.Flush(); }
            }
            if (o.Token is null)
            {
                system.Log.Warning("command host off: no token configured (HIGGS_CMD_TOKEN, HIGGS_CMD_TOKEN_FILE or --cmd-token-file)");
                Print("off reason=no-token");
                return;
            }
            CommandHostServer? server = null;
            var handlers = new CommandHandlers(system, registry, o, () => server?.Endpoint?.ToString() ?? "-");
            server = new CommandHostServer(o, handlers.Run, line => { system.Log.Warning("command host: {0}", line); Print(line); });
            try
            {
                var ep = server.Start();
                Print($"listening={ep} tls={(server.Tls ? "on" : "off")}");
            }
            catch (SocketException e)
            {
                system.Log.Error("command host could not bind {0}:{1}: {2}", o.Host, o.Port, e.Message);
                Print($"off reason=bind-failed {o.Host}:{o.Port}");
                return;
            }
            CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "stop-command-host", async () =>
            {
                await server.DisposeAsync();
                return Done.Instance;
            });
        });
    }
}
