using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Pbm;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>
/// The TCP listener of the command host (see <see cref="Wire"/>): one request per connection, checked in this order:
/// admission to the pending pool, TLS handshake, size limit on the request line and the token, all within
/// <see cref="CommandHostOptions.AuthTimeout"/>; then an authenticated slot (total and per peer, see
/// <see cref="ConnectionGate"/>), known command and arguments. Every refusal is reported to <c>log</c> with the
/// client's address and the reason.
/// </summary>
public sealed class CommandHostServer : IAsyncDisposable
{
    public delegate Task<int> Handler(CommandCatalog.Command command, CommandContext ctx);

    private const string RefusedPrefix = "refused: ";
    private readonly CommandHostOptions _o;
    private readonly Handler _handler;
    private readonly Action<string> _log;
    private readonly X509Certificate2? _cert;
    private readonly byte[]? _tokenHash;
    private readonly CancellationTokenSource _stop = new();
    private TcpListener? _listener;
    private Task? _loop;
    private readonly ConnectionGate _gate;

    public CommandHostServer(CommandHostOptions o, Handler handler, Action<string> log)
    {
        _o = o;
        _handler = handler;
        _log = log;
        _tokenHash = o.Token is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(o.Token));
        _cert = o.TlsCertificate is null ? null : LoadCertificate(o);
        _gate = new ConnectionGate(o.MaxPending, o.MaxPendingPerPeer, o.MaxConnections, o.MaxPerPeer);
    }

    public IPEndPoint? Endpoint => _listener?.LocalEndpoint as IPEndPoint;
    public bool Tls => _cert is not null;

    public static X509Certificate2 LoadCertificate(CommandHostOptions o) =>
        o.TlsKey is not null
            ? X509Certificate2.CreateFromPemFile(o.TlsCertificate!, o.TlsKey)
            : X509CertificateLoader.LoadPkcs12FromFile(o.TlsCertificate!, o.TlsPassword);

    public IPEndPoint Start()
    {
        if (_tokenHash is null) throw new InvalidOperationException("the command host refuses to start without a token");
        var address = _o.Host is "localhost" ? IPAddress.Loopback : IPAddress.Parse(_o.Host);
        _listener = new TcpListener(address, _o.Port);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
        return Endpoint!;
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener!.AcceptTcpClientAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        var remote = client.Client.RemoteEndPoint?.ToString() ?? "?";
        var peer = (client.Client.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        using var owned = client;
        using var head = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var pending = _gate.Admit(peer, () => { try { head.Cancel(); } catch (ObjectDisposedException) { } });
        head.CancelAfter(_o.AuthTimeout);
        string Unauthenticated() => pending.Evicted
            ? "dropped before authenticating: too many unauthenticated connections (oldest dropped first)"
            : $"not authenticated within {_o.AuthTimeout.TotalSeconds:0.#} s";
        bool entered = false;
        try
        {
            client.NoDelay = true;
            Stream stream = client.GetStream();
            if (_cert is not null)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                try
                {
                    await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                    {
                        ServerCertificate = _cert, ClientCertificateRequired = false,
                        EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
                    }, head.Token);
                }
                catch (OperationCanceledException)
                {
                    _log($"refused {remote}: {Unauthenticated()} (TLS handshake not finished)");
                    return;
                }
                catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
                {
                    _log($"refused {remote}: TLS handshake failed ({e.GetBaseException().Message})");
                    return;
                }
                stream = ssl;
            }
            await using var s = stream;
            var writeLock = new SemaphoreSlim(1, 1);
            async Task Send(string frame)
            {
                var bytes = Encoding.UTF8.GetBytes(frame + "\n");
                await writeLock.WaitAsync();
                try { await s.WriteAsync(bytes); await s.FlushAsync(); }
                finally { writeLock.Release(); }
            }
            async Task Refuse(int code, string what, string reason)
            {
                _log($"refused {remote}{what}: {reason}");
                try { await Send(Wire.End(code, "refused: " + reason)); } catch (IOException) { }
            }

            string? line;
            try { line = await Wire.ReadLineAsync(s, _o.MaxRequestBytes, head.Token); }
            catch (InvalidDataException e) { await Refuse(ExitCodes.Failed, "", e.Message); return; }
            catch (OperationCanceledException) { await Refuse(ExitCodes.Failed, "", Unauthenticated()); return; }
            if (line is null) return;
            Wire.Request req;
            try { req = Wire.DecodeRequest(line); }
            catch (FormatException e) { await Refuse(ExitCodes.Usage, "", e.Message); return; }
            var what = " [" + string.Join(' ', req.Argv.Take(2)) + "]";
            if (req.Token is null) { await Refuse(ExitCodes.Unauthorized, what, "unauthorized: no token (set HIGGS_CMD_TOKEN or --token-file)"); return; }
            if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(req.Token)), _tokenHash!))
            {
                await Refuse(ExitCodes.Unauthorized, what, "unauthorized: wrong token");
                return;
            }
            _gate.Leave(pending);
            if (_gate.Enter(peer) is { } busy) { await Refuse(ExitCodes.Failed, what, busy); return; }
            entered = true;
            // the same grammar the CLI checked the words with: nothing unknown reaches a handler
            var (command, args, usage) = RemoteGrammar.ParseHost(req.Argv);
            if (usage is not null) { await Refuse(ExitCodes.Usage, what, usage); return; }

            using var life = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var ctx = new CommandContext(args!, req.Json, remote, Send, life.Token);
            // a streaming command ends when the client hangs up: the watcher below sees the EOF
            _ = WatchHangUp(client, life);
            int code;
            try { code = await _handler(command!, ctx); }
            catch (OperationCanceledException) when (life.IsCancellationRequested) { return; }
            catch (IOException) { return; }
            catch (CliUsageException e) { code = ctx.Fail(ExitCodes.Usage, e.Message); }
            catch (CoordinatorUnavailableException e) { code = ctx.Fail(ExitCodes.Failed, e.Message); }
            if (ctx.Refused) _log($"refused {remote}{what}: {ctx.Error![RefusedPrefix.Length..]}");
            try { await Send(Wire.End(code, ctx.Error)); } catch (IOException) { }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // the client went away mid-reply
        }
        finally
        {
            _gate.Leave(pending);
            if (entered) _gate.Exit(peer);
        }
    }

    private static async Task WatchHangUp(TcpClient client, CancellationTokenSource life)
    {
        try
        {
            while (!life.IsCancellationRequested)
            {
                await Task.Delay(500, life.Token);
                if (client.Client.Poll(0, SelectMode.SelectRead) && client.Client.Available == 0) { life.Cancel(); return; }
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Stop();
        if (_loop is not null) await _loop;
        _cert?.Dispose();
    }
}
