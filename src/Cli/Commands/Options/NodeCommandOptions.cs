using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>
/// Options of <c>higgs node</c>; each may also come from the environment (HIGGS_NODE__PORT, …), which the flags
/// override. A new node setting is declared here and read in NodeOptions.From (or CommandHostOptions / RemoteTlsOptions).
/// </summary>
public static class NodeCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Many("role", "coordinator|loader|worker[,...]", "roles of this node"),
        Opt.Value("port", "P", "Akka remoting port (0: any free port)"),
        Opt.Value("seeds", "host:port,...", "seed nodes (list at least 2 in production)"),
        Opt.Value("host", "H", "address to bind (default 127.0.0.1)"),
        Opt.Value("public-host", "H", "address other nodes reach this one at"),
        Opt.Value("system", "NAME", "actor system name (default higgs)"),
        Opt.Value("threads", "N", "libtorch intra-op threads (0: libtorch's default)"),
        Opt.Value("loader-window", "N", "batches a loader builds ahead per worker (1..8, default 3)"),
        Opt.Value("stable-after", "S", "split-brain resolver stable-after in seconds (default 5)"),
        Opt.Value("heartbeat-pause", "S", "seconds a member may miss heartbeats before it is unreachable (default 10)"),
        Opt.Value("join-timeout", "S", "seconds to wait for a seed to accept the join before starting again as a new incarnation (default 40)"),
        Opt.Value("resume-wait", "S", "after a fail-over, seconds to wait for workers to re-register (default 15)"),
        Opt.Value("journal", "sqlite:PATH|postgresql:CS|memory", "the coordinator's journal"),
        Opt.Value("fault", "kill:ROLE@step=K[,point=P]", "scheduled hard exit for drills and tests"),
        Opt.Value("gpus", "all|N|0,3,5", "one worker process per GPU"),
        Opt.Value("log-dir", "DIR", "logs of the per-GPU worker processes (default logs)"),
        Opt.Value("remote-tls-cert", "FILE.pfx", "this node's certificate of the cluster CA (higgs cluster certs; password in HIGGS_REMOTE_TLS_PASSWORD)"),
        Opt.Flag("insecure", "run without remoting TLS: any host that reaches the port can join (loud warning)"),
        Opt.Value("cmd-port", "P|off", "the command host's port (default 9110)"),
        Opt.Value("cmd-host", "H", "the command host's bind address (default 127.0.0.1)"),
        Opt.Value("cmd-token-file", "FILE", "the command host's token"),
        Opt.Value("cmd-tls-cert", "FILE", "TLS certificate of the command host"),
        Opt.Value("cmd-tls-key", "FILE", "its private key (PEM)"),
        Opt.Value("cmd-max-request", "BYTES", "largest request the command host reads"),
        Opt.Value("cmd-max-per-peer", "N", "requests one client address may have running at once (default 16)"),
        Opt.Many("data-root", "DIR[,DIR]", "folders submitted runs may read"),
        Opt.Many("output-root", "DIR[,DIR]", "folders submitted runs may write"),
    };
}
