using HiggsCluster.Cli.Grammar;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages.Faults;
using Microsoft.Extensions.Configuration;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// Settings of one cluster node. Every node and client must share <see cref="MaxFrameSize"/> and the SBR settings
/// (a mismatch makes associations flap), so they are validated here rather than left to HOCON.
/// </summary>
public sealed record NodeOptions
{
    public static readonly string[] KnownRoles = { "coordinator", "loader", "worker" };
    public const int DefaultFrameSize = 16 * 1024 * 1024;

    public string SystemName { get; init; } = "higgs";
    public string Host { get; init; } = "127.0.0.1";
    public string? PublicHost { get; init; }
    public int Port { get; init; }
    public IReadOnlyList<string> Seeds { get; init; } = Array.Empty<string>();
    public IReadOnlyList<string> Roles { get; init; } = Array.Empty<string>();
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// How long a member may miss heartbeats before it is unreachable. Akka's 3 s default marks a busy node unreachable:
    /// a training step's GC pauses or an overloaded machine delay heartbeats, and the split-brain resolver then downs a
    /// healthy node. The price: a node that really died is noticed this much later (then stable-after, then downed).
    /// </summary>
    public TimeSpan HeartbeatPause { get; init; } = DefaultHeartbeatPause;
    public static readonly TimeSpan DefaultHeartbeatPause = TimeSpan.FromSeconds(10);
    /// <summary>How long a node restarted on its old address waits for a seed to call the address free before it joins anyway.</summary>
    public TimeSpan RejoinWait { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>A node whose join no seed accepted within this time stops and starts again as a new incarnation.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(40);
    /// <summary>How many times this process has started the node again after a join nobody accepted (set by the node, not by users).</summary>
    public int Incarnation { get; init; }
    public int MaxFrameSize { get; init; } = DefaultFrameSize;
    /// <summary>libtorch intra-op threads of this process (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Batches a loader builds ahead per worker rank.</summary>
    public int LoaderWindow { get; init; } = 3;
    /// <summary>
    /// The coordinator's journal (coordinator nodes only). Every coordinator node of a cluster must name the same one,
    /// so the node that takes the singleton over can replay it. In memory unless set; the CLI defaults to a SQLite file.
    /// </summary>
    public CoordinatorJournal Journal { get; init; } = CoordinatorJournal.InMemory;
    /// <summary>After a fail-over, how long a run waits for its workers to re-register before going on with fewer.</summary>
    public TimeSpan ResumeWait { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Scheduled hard exits for drills and tests (<c>--fault kill:worker@step=7,point=after-allreduce</c>).</summary>
    public FaultSchedule Faults { get; init; } = FaultSchedule.None;

    /// <summary>The node's command host (null: none, as in-process tests build nodes).</summary>
    public CommandHost.CommandHostOptions? CommandHost { get; init; }
    /// <summary>TLS for Akka remoting (null: plain TCP, which `higgs node` allows only with <see cref="Insecure"/>).</summary>
    public RemoteTlsOptions? RemoteTls { get; init; }
    /// <summary>`--insecure`: plain remoting, open to anyone who reaches the port. Warned about loudly at start.</summary>
    public bool Insecure { get; init; }

    public const string InsecureWarning =
        "WARNING: --insecure: Akka remoting is plain TCP without authentication; anyone who reaches this node's port can join the cluster, get a rank and run commands on it. Use --remote-tls-cert NODE.pfx (higgs cluster certs) outside a private test.";

    /// <summary>Seed addresses in the protocol the node speaks: with remoting TLS on, Akka names the transport akka.ssl.tcp.</summary>
    public IEnumerable<string> SeedAddresses => Seeds.Select(s => $"{(RemoteTls is null ? "akka.tcp" : "akka.ssl.tcp")}://{SystemName}@{s}");

    /// <summary>
    /// Where a worker's all-reduce ring listens and is reached: the advertised host as an IP address. The listener
    /// binds an address, so a host name (a container's, by default under 0.0.0.0) is resolved, IPv4 first.
    /// </summary>
    public string RingHost
    {
        get
        {
            var h = PublicHost ?? Host;
            if (System.Net.IPAddress.TryParse(h, out _)) return h;
            var ips = System.Net.Dns.GetHostAddresses(h);
            var ip = ips.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ?? ips.FirstOrDefault()
                ?? throw new CliUsageException($"public host '{h}' does not resolve to an address");
            return ip.ToString();
        }
    }

    public NodeOptions Validate()
    {
        if (Roles.Count == 0) throw new CliUsageException("node needs at least one --role (coordinator, loader, worker)");
        foreach (var r in Roles)
            if (!KnownRoles.Contains(r)) throw new CliUsageException($"unknown role '{r}' (expected coordinator, loader or worker)");
        if (Port is < 0 or > 65535) throw new CliUsageException($"--port {Port} is not a TCP port");
        if (Seeds.Count == 0) throw new CliUsageException("node needs --seeds host:port[,host:port...] (list at least 2 seeds in production)");
        foreach (var s in Seeds)
        {
            int colon = s.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(s[(colon + 1)..], out var p) || p is <= 0 or > 65535)
                throw new CliUsageException($"seed '{s}' is not host:port");
        }
        if (StableAfter < TimeSpan.FromSeconds(1)) throw new CliUsageException($"SBR stable-after {StableAfter} is too short");
        if (HeartbeatPause < TimeSpan.FromSeconds(2) || HeartbeatPause > TimeSpan.FromMinutes(5))
            throw new CliUsageException($"--heartbeat-pause {HeartbeatPause.TotalSeconds:0.###} s must be 2..300 seconds");
        // the first seed forms the cluster after Akka's 5 s seed-node timeout: a join timeout that short would stop it first
        if (JoinTimeout < TimeSpan.FromSeconds(10) || JoinTimeout > TimeSpan.FromHours(1))
            throw new CliUsageException($"--join-timeout {JoinTimeout.TotalSeconds:0.###} s must be 10..3600 seconds");
        if (Threads is < 0 or > 1024) throw new CliUsageException($"--threads {Threads} must be 0 (default) or a positive count");
        if (LoaderWindow is < 1 or > 8) throw new CliUsageException($"--loader-window {LoaderWindow} must be 1..8");
        try { Journal.Validate(); }
        catch (ArgumentException e) { throw new CliUsageException($"--journal: {e.Message}"); }
        if (ResumeWait < TimeSpan.Zero) throw new CliUsageException($"--resume-wait {ResumeWait} is negative");
        try { Faults.ForRoles(Roles); }
        catch (ArgumentException e) { throw new CliUsageException(e.Message); }
        if (MaxFrameSize < 1024 * 1024) throw new CliUsageException($"frame size {MaxFrameSize} is below 1 MiB; batches would be dropped");
        return this;
    }

    /// <summary>Environment (HIGGS_NODE__PORT, HIGGS_NODE__SEEDS, …) first, then command-line flags override.</summary>
    public static NodeOptions From(IConfiguration config, CliArgs args)
    {
        var env = config.GetSection("Node");
        static string[] List(IEnumerable<string> values) =>
            values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct().ToArray();
        string? Pick(string flag, string key) => args.Get(flag) ?? env[key];
        var roles = args.All("role").Count > 0 ? List(args.All("role")) : List(new[] { env["Roles"] ?? "" });
        FaultSchedule faults;
        try { faults = FaultSchedule.Parse(Pick("fault", "Fault")); }
        catch (ArgumentException e) { throw new CliUsageException(e.Message); }
        var o = new NodeOptions
        {
            Faults = faults,
            SystemName = Pick("system", "System") ?? "higgs",
            Host = Pick("host", "Host") ?? "127.0.0.1",
            // a node bound to every interface advertises its host name (a container's, under compose) unless told otherwise
            PublicHost = Pick("public-host", "PublicHost") ?? ((Pick("host", "Host") ?? "127.0.0.1") is "0.0.0.0" ? System.Net.Dns.GetHostName() : null),
            Port = int.TryParse(Pick("port", "Port") ?? "0", out var port) ? port : throw new CliUsageException("--port must be an integer"),
            Seeds = List(new[] { Pick("seeds", "Seeds") ?? "" }),
            Roles = roles,
            Threads = int.TryParse(Pick("threads", "Threads") ?? "0", out var th) ? th : throw new CliUsageException("--threads must be an integer"),
            LoaderWindow = int.TryParse(Pick("loader-window", "LoaderWindow") ?? "3", out var lw) ? lw : throw new CliUsageException("--loader-window must be an integer"),
            StableAfter = TimeSpan.FromSeconds(double.TryParse(Pick("stable-after", "StableAfterSeconds") ?? "5",
                System.Globalization.CultureInfo.InvariantCulture, out var sa) ? sa : throw new CliUsageException("--stable-after must be seconds")),
            HeartbeatPause = TimeSpan.FromSeconds(double.TryParse(Pick("heartbeat-pause", "HeartbeatPauseSeconds") ?? DefaultHeartbeatPause.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                System.Globalization.CultureInfo.InvariantCulture, out var hp) && Math.Abs(hp) < 1e6 ? hp : throw new CliUsageException("--heartbeat-pause must be seconds")),
            JoinTimeout = TimeSpan.FromSeconds(double.TryParse(Pick("join-timeout", "JoinTimeoutSeconds") ?? "40",
                System.Globalization.CultureInfo.InvariantCulture, out var jt) && Math.Abs(jt) < 1e6 ? jt : throw new CliUsageException("--join-timeout must be seconds")),
            ResumeWait = TimeSpan.FromSeconds(double.TryParse(Pick("resume-wait", "ResumeWaitSeconds") ?? "15",
                System.Globalization.CultureInfo.InvariantCulture, out var rw) ? rw : throw new CliUsageException("--resume-wait must be seconds")),
            CommandHost = HiggsCluster.Cli.CommandHost.CommandHostOptions.From(env, args),
            RemoteTls = RemoteTlsOptions.From(env, args),
            Insecure = args.Flag("insecure") || env["Insecure"] is "true" or "1" or "yes",
        };
        RequireTrust(o);
        var system = o.SystemName;
        o = o with { Journal = ParseJournal(Pick("journal", "Journal") ?? $"sqlite:{system}-coordinator.db") };
        return o.Validate();
    }

    /// <summary>Membership is closed by default: a node started from the command line needs its certificate, or says --insecure.</summary>
    private static void RequireTrust(NodeOptions o)
    {
        if (o.RemoteTls is not null && o.Insecure)
            throw new CliUsageException("--insecure and --remote-tls-cert exclude each other: give one");
        if (o.RemoteTls is null && !o.Insecure)
            throw new CliUsageException("node refuses to start without remoting TLS: give --remote-tls-cert NODE.pfx (make them with 'higgs cluster certs --out DIR --nodes a,b,c') or --insecure for an open test cluster");
    }

    /// <summary><c>sqlite:PATH</c> (one file per cluster, on storage all coordinator nodes share), <c>postgresql:CONNECTION-STRING</c>, or <c>memory</c>.</summary>
    public static CoordinatorJournal ParseJournal(string value)
    {
        int colon = value.IndexOf(':');
        var (kind, rest) = colon < 0 ? (value, "") : (value[..colon], value[(colon + 1)..]);
        return kind.Trim().ToLowerInvariant() switch
        {
            "memory" when rest.Length == 0 => CoordinatorJournal.InMemory,
            "sqlite" => CoordinatorJournal.SqliteFile(rest),
            "postgresql" or "postgres" => new CoordinatorJournal { Kind = JournalKind.PostgreSql, Connection = rest },
            _ => throw new CliUsageException($"--journal '{value}' must be sqlite:PATH, postgresql:CONNECTION-STRING or memory"),
        };
    }
}
