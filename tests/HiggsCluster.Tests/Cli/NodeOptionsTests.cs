using System.Net;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Cluster;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>How `higgs node` settings turn into what other nodes are told: seed protocol, advertised host, ring address.</summary>
[Trait("Category", "Cli")]
public sealed class NodeOptionsTests : IDisposable
{
    private readonly TempDir _dir = new();

    // --insecure unless a test gives a certificate: these tests are about addresses, not trust
    private static NodeOptions From(params string[] args) => Exactly(args.Contains("--remote-tls-cert") ? args : args.Append("--insecure").ToArray());

    private static NodeOptions Exactly(params string[] args) =>
        NodeOptions.From(new ConfigurationBuilder().Build(), CommandTable.ArgsOf(new[] { "node", "--role", "worker", "--seeds", "10.0.0.1:4053", "--cmd-port", "off" }.Concat(args).ToArray()));

    [Fact]
    public void Seeds_are_addressed_in_the_protocol_the_node_speaks()
    {
        Assert.Equal("akka.tcp://higgs@10.0.0.1:4053", Assert.Single(From().SeedAddresses));
        var tls = From("--remote-tls-cert", TestClusterCerts.NodePfx);
        Assert.NotNull(tls.RemoteTls);
        Assert.Equal("akka.ssl.tcp://higgs@10.0.0.1:4053", Assert.Single(tls.SeedAddresses));
    }

    [Fact]
    public void A_node_on_every_interface_advertises_its_host_name_and_its_ring_listens_on_an_address()
    {
        var any = From("--host", "0.0.0.0");
        Assert.Equal(Dns.GetHostName(), any.PublicHost);
        Assert.True(IPAddress.TryParse(any.RingHost, out _), any.RingHost);

        var named = From("--host", "0.0.0.0", "--public-host", "localhost");
        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(named.RingHost)), named.RingHost);

        Assert.Equal("10.0.0.2", From("--public-host", "10.0.0.2").RingHost);
        Assert.Equal("127.0.0.1", From().RingHost);
        Assert.Null(From().PublicHost);
    }

    [Fact]
    public void A_missing_remote_certificate_is_a_usage_error_naming_the_flag()
    {
        var e = Assert.Throws<CliUsageException>(() => From("--remote-tls-cert", _dir.File("none.pfx")));
        Assert.Contains("--remote-tls-cert", e.Message);
    }

    [Fact]
    [Trait("Category", "Adversarial")]
    public void A_node_without_a_certificate_refuses_to_start_unless_told_insecure()
    {
        var e = Assert.Throws<CliUsageException>(() => Exactly());
        Assert.Contains("--remote-tls-cert", e.Message);
        Assert.Contains("--insecure", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var open = Exactly("--insecure");
        Assert.True(open.Insecure);
        Assert.Null(open.RemoteTls);
        Assert.Contains("exclude", Assert.Throws<CliUsageException>(() => Exactly("--insecure", "--remote-tls-cert", TestClusterCerts.NodePfx)).Message);
    }

    [Fact]
    [Trait("Category", "Adversarial")]
    public void Certificates_that_are_not_a_node_of_a_cluster_CA_are_usage_errors()
    {
        // a lone self-signed PFX (the old way): no cluster CA to judge peers by
        var lone = CliHost.MakeCertificate(_dir.Path).Pfx;
        Assert.Contains("not a node certificate with its cluster CA", Assert.Throws<CliUsageException>(() => Exactly("--remote-tls-cert", lone)).Message);
        // the CA itself, with its key, must stay off the nodes
        var ca = Path.Combine(TestClusterCerts.ClusterDir, HiggsCluster.Cli.Security.ClusterCertificates.CaFile);
        Assert.Contains("cluster CA itself", Assert.Throws<CliUsageException>(() => Exactly("--remote-tls-cert", ca)).Message);
        var junk = _dir.File("junk.pfx");
        File.WriteAllText(junk, "not a pfx");
        Assert.Contains("not a readable PFX", Assert.Throws<CliUsageException>(() => Exactly("--remote-tls-cert", junk)).Message);
    }

    /// <summary>
    /// Every variable the process harness sets for its nodes is one the nodes read (a misspelt HIGGS_HeartbeatPauseSeconds
    /// was read by nobody for a session): its certificate arrives, and the heartbeat pause is the product's.
    /// </summary>
    [Fact]
    public void The_process_harness_environment_reaches_the_nodes_options()
    {
        using var nodes = new HiggsCluster.Tests.Harness.HiggsProcesses();
        var env = nodes.Environment.Where(kv => kv.Key.StartsWith("HIGGS_", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["HIGGS_".Length..].Replace("__", ":"), kv => kv.Value);
        var config = new ConfigurationBuilder().AddInMemoryCollection(env).Build();
        // the harness's certificate comes the same way (no --insecure needed)
        var o = NodeOptions.From(config, CommandTable.ArgsOf("node", "--role", "worker", "--seeds", "10.0.0.1:4053", "--cmd-port", "off"));
        Assert.Equal(NodeOptions.DefaultHeartbeatPause, o.HeartbeatPause);
        Assert.NotNull(o.RemoteTls);
    }

    [Fact]
    [Trait("Category", "Adversarial")]
    public void The_heartbeat_pause_defaults_to_10_s_for_busy_training_nodes_and_is_bounded()
    {
        Assert.Equal(TimeSpan.FromSeconds(10), From().HeartbeatPause);
        Assert.Equal(TimeSpan.FromSeconds(2.5), From("--heartbeat-pause", "2.5").HeartbeatPause);
        var env = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Node:HeartbeatPauseSeconds"] = "20" }).Build();
        Assert.Equal(TimeSpan.FromSeconds(20), NodeOptions.From(env, CommandTable.ArgsOf("node", "--role", "worker", "--seeds", "10.0.0.1:4053", "--cmd-port", "off", "--insecure")).HeartbeatPause);
        foreach (var bad in new[] { "1", "301", "NaN", "1e300", "soon" })
        {
            var e = Assert.Throws<CliUsageException>(() => From("--heartbeat-pause", bad));
            Assert.Contains("--heartbeat-pause", e.Message);
        }
    }

    [Fact]
    [Trait("Category", "Adversarial")]
    public void The_join_timeout_defaults_to_40_s_reaches_akka_from_the_environment_and_is_bounded()
    {
        Assert.Equal(TimeSpan.FromSeconds(40), From().JoinTimeout);
        Assert.Equal(TimeSpan.FromSeconds(12.5), From("--join-timeout", "12.5").JoinTimeout);
        var env = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Node:JoinTimeoutSeconds"] = "90" }).Build();
        Assert.Equal(TimeSpan.FromSeconds(90), NodeOptions.From(env, CommandTable.ArgsOf("node", "--role", "worker", "--seeds", "10.0.0.1:4053", "--cmd-port", "off", "--insecure")).JoinTimeout);
        foreach (var bad in new[] { "1", "9.9", "-5", "3601", "NaN", "1e300", "soon" })
        {
            var e = Assert.Throws<CliUsageException>(() => From("--join-timeout", bad));
            Assert.Contains("--join-timeout", e.Message);
        }
    }

    public void Dispose() => _dir.Dispose();
}
