using System.Diagnostics;
using System.Text.Json.Nodes;
using Akka.Cluster;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Messages;

namespace HiggsCluster.Cli.CommandHost;

/// <summary>loader list, worker list (the coordinator's view) and node info (this process).</summary>
public static class RosterCommands
{
    public static async Task<int> Loaders(CommandHandlers h, CommandContext ctx)
    {
        var r = await h.Ask<Roster>(GetRoster.Instance, ctx.Ct);
        await ctx.Result(new JsonObject { ["loaders"] = new JsonArray(r.Loaders.Select(l => (JsonNode?)l).ToArray()), ["count"] = r.Loaders.Length },
            () => string.Join("\n", r.Loaders.Append($"Count: {r.Loaders.Length} loaders")));
        return ExitCodes.Ok;
    }

    public static async Task<int> Workers(CommandHandlers h, CommandContext ctx)
    {
        var r = await h.Ask<Roster>(GetRoster.Instance, ctx.Ct);
        var rows = r.Workers.OrderBy(w => w.Rank < 0 ? int.MaxValue : w.Rank).ToArray();
        await ctx.Result(new JsonObject
        {
            ["generation"] = r.Generation,
            ["workers"] = new JsonArray(rows.Select(w => (JsonNode?)new JsonObject
            {
                ["worker_id"] = w.WorkerId, ["path"] = w.Path, ["rank"] = w.Rank, ["ring"] = $"{w.RingHost}:{w.RingPort}", ["cuda"] = w.HasCuda,
            }).ToArray()),
            ["count"] = rows.Length,
        }, () => string.Join("\n", rows.Select(w => $"rank {(w.Rank < 0 ? "-" : w.Rank.ToString())} | {w.WorkerId} | {w.Path} | ring {w.RingHost}:{w.RingPort} | {(w.HasCuda ? "cuda" : "cpu")}")
            .Append($"Count: {rows.Length} workers (group generation {r.Generation})")));
        return ExitCodes.Ok;
    }

    public static async Task<int> NodeInfo(CommandHandlers h, CommandContext ctx)
    {
        var cluster = Cluster.Get(h.System);
        var self = cluster.State.Members.FirstOrDefault(m => m.Address == cluster.SelfAddress);
        using var proc = Process.GetCurrentProcess();
        var uptime = DateTime.UtcNow - h.Started;
        var data = new JsonObject
        {
            ["address"] = cluster.SelfAddress.ToString(),
            ["roles"] = new JsonArray(cluster.SelfRoles.Where(r => !r.StartsWith("dc-", StringComparison.Ordinal)).Order().Select(r => (JsonNode?)r).ToArray()),
            ["status"] = self?.Status.ToString().ToLowerInvariant() ?? "joining",
            ["members_up"] = cluster.State.Members.Count(m => m.Status == MemberStatus.Up),
            ["leader"] = cluster.State.Leader?.ToString(),
            ["uptime_s"] = Math.Round(uptime.TotalSeconds, 1),
            ["pid"] = Environment.ProcessId, ["dotnet"] = Environment.Version.ToString(), ["os"] = Environment.OSVersion.ToString(),
            ["cpus"] = Environment.ProcessorCount, ["rss_mb"] = proc.WorkingSet64 / (1024 * 1024),
            ["command_host"] = h.Endpoint, ["tls"] = h.Options.TlsCertificate is not null,
            ["data_roots"] = new JsonArray(h.Options.DataRoots.Select(r => (JsonNode?)r).ToArray()),
            ["output_roots"] = new JsonArray(h.Options.OutputRoots.Select(r => (JsonNode?)r).ToArray()),
        };
        await ctx.Result(data, () => string.Join("\n", data.Select(kv => $"{kv.Key,-14} {(kv.Value is JsonArray a ? string.Join(", ", a.Select(x => x?.ToString())) : kv.Value?.ToString() ?? "-")}")));
        return ExitCodes.Ok;
    }
}
