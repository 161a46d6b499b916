using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;

namespace HiggsCluster.Cli.Pbm;

public sealed class PbmConnectionException(string message) : Exception(message);

/// <summary>
/// The CLI side of the command host: one TCP (or TLS) connection per command, the request line, then frames until
/// the final one. No ActorSystem: a call costs a connect and the command itself.
/// </summary>
public sealed class PbmClient
{
    public required string Host { get; init; }
    public required int Port { get; init; }
    public bool Tls { get; init; }
    /// <summary>A certificate to trust (the host's own, or its CA); null: the system's trust store.</summary>
    public X509Certificate2? TrustedCertificate { get; init; }
    public string? TlsName { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Sends the request and hands every non-final frame to <paramref name="onFrame"/>; returns the final frame's code and error.</summary>
    public async Task<(int Code, string? Error)> CallAsync(Wire.Request request, Func<JsonObject, Task> onFrame, TimeSpan? replyTimeout, CancellationToken ct)
    {
        using var tcp = new TcpClient { NoDelay = true };
        using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            connect.CancelAfter(ConnectTimeout);
            try { await tcp.ConnectAsync(Host, Port, connect.Token); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // nothing listens there: a node that is not running, or one whose command host is on another port
                throw new PbmConnectionException($"no command host at {Host}:{Port} (is the node running? its command host port is --cmd-port)");
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                throw new PbmConnectionException($"cannot connect to {Host}:{Port}: {(e is SocketException se ? se.Message : "timed out")} (is a node running with its command host there?)");
            }
        }
        Stream stream = tcp.GetStream();
        if (Tls)
        {
            var ssl = new SslStream(stream, false, Validate);
            try
            {
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = TlsName ?? Host,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                }, ct);
            }
            catch (Exception e) when (e is AuthenticationException or IOException)
            {
                throw new PbmConnectionException($"TLS handshake with {Host}:{Port} failed: {e.Message}"
                    + (TrustedCertificate is null ? " (a self-signed host certificate needs --tls-ca FILE)" : ""));
            }
            stream = ssl;
        }
        await using var s = stream;
        await s.WriteAsync(Encoding.UTF8.GetBytes(Wire.EncodeRequest(request) + "\n"), ct);
        await s.FlushAsync(ct);
        using var reader = new StreamReader(s, Encoding.UTF8);
        bool replied = false;
        while (true)
        {
            string? line;
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                if (replyTimeout is { } t) wait.CancelAfter(t);
                try { line = await reader.ReadLineAsync(wait.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new PbmConnectionException($"no reply from {Host}:{Port} within {replyTimeout!.Value.TotalSeconds:0} s"); }
                catch (IOException) when (!replied) { throw NoReply(); } // reset: a TLS host refusing plain text
                catch (IOException e) { throw new PbmConnectionException($"connection to {Host}:{Port} broke: {e.Message}"); }
            }
            if (line is null) throw NoReply();
            replied = true;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (System.Text.Json.JsonException) { throw new PbmConnectionException($"{Host}:{Port} is not a command host (it answered with something other than its frames)"); }
            if (node is not JsonObject frame) continue;
            if (frame["k"]?.GetValue<string>() == "end")
                return (frame["code"]!.GetValue<int>(), frame["error"]?.GetValue<string>());
            await onFrame(frame);
        }
    }

    /// <summary>
    /// The host hung up before its first frame. A command host with TLS does that to a plain connection (its handshake
    /// fails on the request line), so over plain TCP that is the likely cause; with TLS it is not.
    /// </summary>
    private PbmConnectionException NoReply() => new($"{Host}:{Port} closed the connection without a reply"
        + (Tls ? "" : " (does the command host use TLS? try --tls, with --tls-ca FILE for a self-signed certificate)"));

    private bool Validate(object sender, X509Certificate? cert, X509Chain? chain, SslPolicyErrors errors)
    {
        if (cert is null) return false;
        if (TrustedCertificate is null) return errors == SslPolicyErrors.None;
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
        using var peer = new X509Certificate2(cert);
        if (peer.RawData.AsSpan().SequenceEqual(TrustedCertificate.RawData)) return true;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.Add(TrustedCertificate);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null) foreach (var e in chain.ChainElements) custom.ChainPolicy.ExtraStore.Add(e.Certificate);
        return custom.Build(peer);
    }
}
