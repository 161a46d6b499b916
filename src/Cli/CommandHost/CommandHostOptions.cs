using HiggsCluster.Cli.Grammar;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Pbm;
using Microsoft.Extensions.Configuration;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>
/// Settings of a node's command host. It binds only <see cref="Host"/> (127.0.0.1 unless configured) and refuses to
/// start without a token. Submitted runs may read only under <see cref="DataRoots"/> ∪ <see cref="OutputRoots"/> and
/// write only under <see cref="OutputRoots"/>.
/// </summary>
public sealed record CommandHostOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0: any free port (tests); the bound port is printed as <c>HIGGS_CMD listening=host:port</c>.</summary>
    public int Port { get; init; } = Wire.DefaultPort;
    public string? Token { get; init; }
    /// <summary>PFX/PKCS#12 file, or a PEM certificate with <see cref="TlsKey"/>; null: plain TCP.</summary>
    public string? TlsCertificate { get; init; }
    public string? TlsKey { get; init; }
    public string? TlsPassword { get; init; }
    public int MaxRequestBytes { get; init; } = Wire.DefaultMaxRequestBytes;
    /// <summary>Authenticated requests served at once, in all and from one peer address.</summary>
    public int MaxConnections { get; init; } = 32;
    public int MaxPerPeer { get; init; } = 16;
    /// <summary>Connections not yet authenticated, in all and from one peer (the oldest is dropped to admit a new one).</summary>
    public int MaxPending { get; init; } = 64;
    public int MaxPendingPerPeer { get; init; } = 16;
    /// <summary>TLS handshake, request line and token must all arrive within this, or the connection is dropped.</summary>
    public TimeSpan AuthTimeout { get; init; } = TimeSpan.FromSeconds(2);
    public IReadOnlyList<string> DataRoots { get; init; } = Array.Empty<string>();
    public IReadOnlyList<string> OutputRoots { get; init; } = Array.Empty<string>();

    public CommandHostOptions Validate()
    {
        if (Port is < 0 or > 65535) throw new CliUsageException($"--cmd-port {Port} is not a TCP port");
        if (Token is not null && Token.Length < 16) throw new CliUsageException("the command-host token must be at least 16 characters");
        if (TlsCertificate is not null && !File.Exists(TlsCertificate)) throw new CliUsageException($"--cmd-tls-cert: file not found: {TlsCertificate}");
        if (TlsKey is not null && !File.Exists(TlsKey)) throw new CliUsageException($"--cmd-tls-key: file not found: {TlsKey}");
        if (MaxRequestBytes is < 1024 or > 64 * 1024 * 1024) throw new CliUsageException($"--cmd-max-request {MaxRequestBytes} must be 1 KiB..64 MiB");
        if (MaxPerPeer is < 1 or > 1024) throw new CliUsageException($"--cmd-max-per-peer {MaxPerPeer} must be 1..1024");
        if (MaxConnections < MaxPerPeer || MaxPending < 1 || MaxPendingPerPeer < 1 || AuthTimeout <= TimeSpan.Zero)
            throw new CliUsageException("command host limits: MaxConnections >= MaxPerPeer >= 1, MaxPending >= 1, MaxPendingPerPeer >= 1, AuthTimeout > 0");
        foreach (var r in DataRoots.Concat(OutputRoots))
            if (!Directory.Exists(r)) throw new CliUsageException($"root folder not found: {r}");
        if (DataRoots.Count == 0 || OutputRoots.Count == 0) throw new CliUsageException("the command host needs at least one data root and one output root");
        return this;
    }

    /// <summary>
    /// Flags first, then HIGGS_NODE__* settings; the token from --cmd-token-file, HIGGS_NODE__CMDTOKENFILE,
    /// HIGGS_CMD_TOKEN_FILE or HIGGS_CMD_TOKEN. Returns null when the host is switched off (--cmd-port off).
    /// Roots default to the working directory.
    /// </summary>
    public static CommandHostOptions? From(IConfiguration node, CliArgs args)
    {
        string? Pick(string flag, string key) => args.Get(flag) ?? node[key];
        var port = Pick("cmd-port", "CmdPort") ?? Wire.DefaultPort.ToString();
        if (port is "off" or "none" or "-1") return null;
        static string[] List(IEnumerable<string?> values) => values.Where(v => v is not null)
            .SelectMany(v => v!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Select(Path.GetFullPath).Distinct().ToArray();
        var data = args.All("data-root").Count > 0 ? List(args.All("data-root")) : List(new[] { node["DataRoots"] });
        var output = args.All("output-root").Count > 0 ? List(args.All("output-root")) : List(new[] { node["OutputRoots"] });
        return new CommandHostOptions
        {
            Host = Pick("cmd-host", "CmdHost") ?? "127.0.0.1",
            Port = int.TryParse(port, out var p) ? p : throw new CliUsageException($"--cmd-port must be a port number or 'off', got '{port}'"),
            Token = ReadToken(Pick("cmd-token-file", "CmdTokenFile")),
            TlsCertificate = Pick("cmd-tls-cert", "CmdTlsCert"),
            TlsKey = Pick("cmd-tls-key", "CmdTlsKey"),
            TlsPassword = Environment.GetEnvironmentVariable("HIGGS_CMD_TLS_PASSWORD"),
            MaxRequestBytes = int.TryParse(Pick("cmd-max-request", "CmdMaxRequest") ?? Wire.DefaultMaxRequestBytes.ToString(), out var m)
                ? m : throw new CliUsageException("--cmd-max-request must be a byte count"),
            MaxPerPeer = int.TryParse(Pick("cmd-max-per-peer", "CmdMaxPerPeer") ?? "16", out var pp)
                ? pp : throw new CliUsageException("--cmd-max-per-peer must be a count"),
            DataRoots = data.Length > 0 ? data : new[] { Directory.GetCurrentDirectory() },
            OutputRoots = output.Length > 0 ? output : new[] { Directory.GetCurrentDirectory() },
        }.Validate();
    }

    /// <summary>The shared secret: a file (first line) wins over the environment; null when none is configured.</summary>
    public static string? ReadToken(string? file)
    {
        file ??= Environment.GetEnvironmentVariable("HIGGS_CMD_TOKEN_FILE");
        if (!string.IsNullOrEmpty(file))
        {
            if (!File.Exists(file)) throw new CliUsageException($"token file not found: {file}");
            var t = File.ReadLines(file).FirstOrDefault()?.Trim();
            return string.IsNullOrEmpty(t) ? throw new CliUsageException($"token file {file} is empty") : t;
        }
        var env = Environment.GetEnvironmentVariable("HIGGS_CMD_TOKEN")?.Trim();
        return string.IsNullOrEmpty(env) ? null : env;
    }
}
