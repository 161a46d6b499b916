using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>In-process mode: every role in one ActorSystem, the coordinator singleton reached through the registry.</summary>
[Trait("Category", "Cluster")]
public class InProcessNodeTests
{
    [Fact(Timeout = 60_000)]
    public async Task All_roles_in_one_system_accept_a_run_and_wait_for_workers()
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next();
        var options = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles }.Validate();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(options.SystemName, (b, _) => b.AddHiggsNode(options).AddHiggsRoleActors(options))).Build();
        await host.StartAsync(ct);
        try
        {
            var registry = host.Services.GetRequiredService<ActorRegistry>();
            var status = await registry.GetAsync<NodeStatusActor>(ct);
            NodeStatus? ns = null;
            for (int i = 0; i < 100 && ns?.MembersUp != 1; i++)
            {
                ns = await status.Ask<NodeStatus>(GetNodeStatus.Instance, TimeSpan.FromSeconds(5), ct);
                if (ns.MembersUp != 1) await Task.Delay(200, ct);
            }
            Assert.Equal(1, ns!.MembersUp);
            Assert.Equal(NodeOptions.KnownRoles.Order(), ns.Roles.Where(r => NodeOptions.KnownRoles.Contains(r)).Order());

            var coordinator = await registry.GetAsync<CoordinatorKey>(ct);
            var spec = ToyCluster.Spec("run-a");
            var reply = await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct);
            Assert.Equal(new RunAccepted("run-a"), reply);
            Assert.IsType<RunRejected>(await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(10), ct));
            // the real loader of this node reads the run's config first: an empty one fails the run naming the missing key
            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            do
            {
                await Task.Delay(100, ct);
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("run-a"), TimeSpan.FromSeconds(10), ct);
            } while (!st.Phase.Equals(RunPhase.Failed) && DateTime.UtcNow < deadline);
            Assert.Equal(RunPhase.Failed, st.Phase);
            Assert.Contains("data.manifest", st.Detail);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Node_options_refuse_bad_settings_by_name()
    {
        Assert.Contains("role", Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => new NodeOptions { Seeds = new[] { "h:1" } }.Validate()).Message);
        Assert.Contains("gpu", Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => new NodeOptions { Roles = new[] { "gpu" }, Seeds = new[] { "h:1" } }.Validate()).Message);
        Assert.Contains("h:x", Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => new NodeOptions { Roles = new[] { "worker" }, Seeds = new[] { "h:x" } }.Validate()).Message);
        Assert.Contains("seeds", Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => new NodeOptions { Roles = new[] { "worker" } }.Validate()).Message);
    }
}
