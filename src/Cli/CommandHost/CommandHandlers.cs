using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Coordinator.Actors;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>Routes a checked request to its palette; shared access to the node's ActorSystem and the coordinator.</summary>
public sealed class CommandHandlers(ActorSystem system, IActorRegistry registry, CommandHostOptions options, Func<string> endpoint)
{
    public static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    public ActorSystem System { get; } = system;
    public CommandHostOptions Options { get; } = options;
    public string Endpoint => endpoint();
    public DateTime Started { get; } = DateTime.UtcNow;

    public Task<int> Run(CommandCatalog.Command c, CommandContext ctx) => (c.Palette, c.Name) switch
    {
        ("cluster", "show") => ClusterCommands.Show(this, ctx),
        ("cluster", "leave") => ClusterCommands.Leave(this, ctx),
        ("cluster", "down") => ClusterCommands.Down(this, ctx),
        ("cluster", "down-unreachable") => ClusterCommands.DownUnreachable(this, ctx),
        ("cluster", "join") => ClusterCommands.Join(this, ctx),
        ("cluster", "tail") => ClusterCommands.Tail(this, ctx),
        ("run", "submit") => RunCommands.Submit(this, ctx),
        ("run", "list") => RunCommands.List(this, ctx),
        ("run", "status") => RunCommands.Status(this, ctx),
        ("run", "watch") => RunCommands.Watch(this, ctx),
        ("run", "stop") => RunCommands.Stop(this, ctx),
        ("run", "checkpoint") => RunCommands.Checkpoint(this, ctx),
        ("run", "validate") => RunCommands.Validate(this, ctx),
        ("run", "logs") => RunLogCommands.Logs(this, ctx),
        ("run", "plot") => RunLogCommands.Plot(this, ctx),
        ("run", "samples") => RunLogCommands.Samples(this, ctx),
        ("loader", "list") => RosterCommands.Loaders(this, ctx),
        ("worker", "list") => RosterCommands.Workers(this, ctx),
        ("node", "info") => RosterCommands.NodeInfo(this, ctx),
        _ => Task.FromResult(ctx.Fail(ExitCodes.Usage, $"{c.Palette} {c.Name} has no handler")),
    };

    /// <summary>Asks the coordinator singleton (through the proxy on nodes without the role).</summary>
    public async Task<T> Ask<T>(object message, CancellationToken ct)
    {
        var coordinator = await registry.GetAsync<CoordinatorKey>(ct);
        try { return await coordinator.Ask<T>(message, AskTimeout, ct); }
        catch (AskTimeoutException) { throw new CoordinatorUnavailableException(); }
    }

    public async Task Tell(object message, CancellationToken ct) => (await registry.GetAsync<CoordinatorKey>(ct)).Tell(message);
}

public sealed class CoordinatorUnavailableException()
    : Exception($"the coordinator did not answer within {CommandHandlers.AskTimeout.TotalSeconds:0} s (is a coordinator node up and the cluster formed?)");
