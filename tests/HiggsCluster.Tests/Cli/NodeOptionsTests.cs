using System.Net;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Audio;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>How `higgs node` settings turn into what other nodes are told: seed protocol, advertised host, ring address.</summary>
[Trait("Category", "Cli")]
public sealed class NodeOptionsTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static NodeOptions From(params string[] args) =>
        NodeOptions.From(new ConfigurationBuilder().Build(), CommandTable.ArgsOf(new[] { "node", "--role", "worker", "--seeds", "10.0.0.1:4053", "--cmd-port", "off" }.Concat(args).ToArray()));

    [Fact]
    public void Seeds_are_addressed_in_the_protocol_the_node_speaks()
    {
        Assert.Equal("akka.tcp://higgs@10.0.0.1:4053", Assert.Single(From().SeedAddresses));
        var pfx = CliHost.MakeCertificate(_dir.Path).Pfx;
        var tls = From("--remote-tls-cert", pfx);
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

    public void Dispose() => _dir.Dispose();
}
