using System.Text.Json.Nodes;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Cluster;
using HiggsCluster.Cli.Pbm;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>The cluster palette: membership as this node sees it, and leave/down/join as side effects on it.</summary>
public static class ClusterCommands
{
    private static IEnumerable<string> Roles(Member m) => m.Roles.Where(r => !r.StartsWith("dc-", StringComparison.Ordinal)).Order(StringComparer.Ordinal);

    public static JsonObject MemberJson(Member m, bool reachable) => new()
    {
        ["address"] = m.Address.ToString(), ["roles"] = new JsonArray(Roles(m).Select(r => (JsonNode?)r).ToArray()),
        ["status"] = m.Status.ToString().ToLowerInvariant(), ["reachable"] = reachable,
    };

    public static async Task<int> Show(CommandHandlers h, CommandContext ctx)
    {
        var cluster = Cluster.Get(h.System);
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var members = state.Members.Select(m => MemberJson(m, !unreachable.Contains(m.Address))).ToArray();
        var data = new JsonObject
        {
            ["self"] = cluster.SelfAddress.ToString(), ["leader"] = state.Leader?.ToString(),
            ["members"] = new JsonArray(members), ["count"] = members.Length,
        };
        await ctx.Result(data, () => string.Join("\n", state.Members.Select(m =>
                $"{m.Address} | [{string.Join(",", Roles(m))}] | {m.Status.ToString().ToLowerInvariant()} | {(unreachable.Contains(m.Address) ? "unreachable" : "reachable")}"
                + (m.Address == state.Leader ? " | leader" : "") + (m.Address == cluster.SelfAddress ? " | self" : ""))
            .Append($"Count: {members.Length} nodes")));
        return ExitCodes.Ok;
    }

    private static bool TryMember(CommandHandlers h, string text, out Address address, out string? error)
    {
        address = Address.AllSystems;
        error = null;
        try { address = Address.Parse(text); }
        catch (Exception e) when (e is UriFormatException or ArgumentException or FormatException) { error = $"'{text}' is not an address like akka.tcp://higgs@host:port"; return false; }
        var a = address;
        if (Cluster.Get(h.System).State.Members.All(m => m.Address != a)) { error = $"{text} is not a member of this cluster"; return false; }
        return true;
    }

    public static async Task<int> Leave(CommandHandlers h, CommandContext ctx)
    {
        var cluster = Cluster.Get(h.System);
        var text = ctx.Args.Positional.Count > 0 ? ctx.Arg(0) : cluster.SelfAddress.ToString();
        if (!TryMember(h, text, out var address, out var error)) return ctx.Fail(ExitCodes.NotFound, error!);
        await ctx.Result(new JsonObject { ["leaving"] = address.ToString() }, () => $"{address} is leaving the cluster");
        cluster.Leave(address);
        return ExitCodes.Ok;
    }

    public static async Task<int> Down(CommandHandlers h, CommandContext ctx)
    {
        if (!TryMember(h, ctx.Arg(0), out var address, out var error)) return ctx.Fail(ExitCodes.NotFound, error!);
        Cluster.Get(h.System).Down(address);
        await ctx.Result(new JsonObject { ["downed"] = address.ToString() }, () => $"{address} marked down");
        return ExitCodes.Ok;
    }

    public static async Task<int> DownUnreachable(CommandHandlers h, CommandContext ctx)
    {
        var cluster = Cluster.Get(h.System);
        var gone = cluster.State.Unreachable.Select(m => m.Address).ToList();
        foreach (var a in gone) cluster.Down(a);
        await ctx.Result(new JsonObject { ["downed"] = new JsonArray(gone.Select(a => (JsonNode?)a.ToString()).ToArray()) },
            () => gone.Count == 0 ? "no unreachable members" : string.Join("\n", gone.Select(a => $"{a} marked down")));
        return ExitCodes.Ok;
    }

    public static async Task<int> Join(CommandHandlers h, CommandContext ctx)
    {
        Address address;
        try { address = Address.Parse(ctx.Arg(0)); }
        catch (Exception e) when (e is UriFormatException or ArgumentException or FormatException) { return ctx.Fail(ExitCodes.Usage, $"'{ctx.Arg(0)}' is not an address like akka.tcp://higgs@host:port"); }
        Cluster.Get(h.System).Join(address);
        await ctx.Result(new JsonObject { ["joining"] = address.ToString() }, () => $"{Cluster.Get(h.System).SelfAddress} is joining {address}");
        return ExitCodes.Ok;
    }

    /// <summary>Streams member and reachability events (from now on) until --count, --seconds or the client hangs up.</summary>
    public static async Task<int> Tail(CommandHandlers h, CommandContext ctx)
    {
        int count = ctx.Args.Int("count", int.MaxValue);
        double seconds = double.TryParse(ctx.Args.Get("seconds"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : double.PositiveInfinity;
        var events = Channel.CreateUnbounded<ClusterEvent.IClusterDomainEvent>();
        var tap = h.System.ActorOf(Props.Create(() => new EventTap(events.Writer)));
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ctx.Ct);
        if (double.IsFinite(seconds)) limit.CancelAfter(TimeSpan.FromSeconds(seconds));
        try
        {
            for (int n = 0; n < count; n++)
            {
                ClusterEvent.IClusterDomainEvent e;
                try { e = await events.Reader.ReadAsync(limit.Token); }
                catch (OperationCanceledException) when (!ctx.Ct.IsCancellationRequested) { break; }
                var (kind, member) = e switch
                {
                    ClusterEvent.IMemberEvent m => (m.GetType().Name, m.Member),
                    ClusterEvent.UnreachableMember u => ("Unreachable", u.Member),
                    ClusterEvent.ReachableMember r => ("Reachable", r.Member),
                    _ => (e.GetType().Name, null),
                };
                if (member is null) { n--; continue; }
                var at = DateTime.UtcNow;
                await ctx.Result(new JsonObject { ["time"] = at.ToString("O"), ["event"] = kind, ["member"] = MemberJson(member, kind != "Unreachable") },
                    () => $"{at:HH:mm:ss.fff} {kind,-14} {member.Address} [{string.Join(",", Roles(member))}]");
            }
        }
        finally { tap.Tell(PoisonPill.Instance); }
        return ExitCodes.Ok;
    }

    private sealed class EventTap : ReceiveActor
    {
        public EventTap(ChannelWriter<ClusterEvent.IClusterDomainEvent> to)
        {
            Receive<ClusterEvent.CurrentClusterState>(_ => { });
            Receive<ClusterEvent.IClusterDomainEvent>(e => to.TryWrite(e));
        }

        protected override void PreStart() => Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

        protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
    }
}
