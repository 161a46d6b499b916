using HiggsCluster.Cli.Grammar;
using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Pbm;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>One request being answered: its arguments and the frames going back to the client.</summary>
public sealed class CommandContext(CliArgs args, bool json, string remote, Func<string, Task> send, CancellationToken ct)
{
    public CliArgs Args { get; } = args;
    public bool Json { get; } = json;
    public string Remote { get; } = remote;
    /// <summary>Cancelled when the client goes away or the node shuts down.</summary>
    public CancellationToken Ct { get; } = ct;
    public string? Error { get; private set; }
    /// <summary>Set by <see cref="Refuse"/>: the host logs the request with its reason.</summary>
    public bool Refused { get; private set; }

    public string Arg(int i) => Args.Positional[i];

    /// <summary>A human line (dropped when the client asked for JSON).</summary>
    public Task Out(string text) => Json ? Task.CompletedTask : send(Wire.Out(text));

    /// <summary>A result: the JSON object for scripts, or its human rendering.</summary>
    public Task Result(JsonNode data, Func<string> human) => Json ? send(Wire.Data(data)) : send(Wire.Out(human()));

    /// <summary>Always a data frame (renderers on the client side, e.g. run watch, ask for JSON).</summary>
    public Task Data(JsonNode data) => send(Wire.Data(data));

    public int Fail(int code, string reason) { Error = reason; return code; }

    /// <summary>The request is refused by policy: exit 1, and the host logs it with the reason.</summary>
    public int Refuse(string reason) { Refused = true; Error = "refused: " + reason; return ExitCodes.Failed; }
}
