using System.Globalization;

namespace HiggsCluster.Messages.Faults;

/// <summary>Where in a node's work a scheduled fault fires.</summary>
public enum FaultPoint { BeforeAllReduce, AfterAllReduce, CheckpointWrite, ServeBatch }

/// <summary>
/// One scheduled fault: the node with <see cref="Role"/> dies hard at <see cref="Point"/> of global step
/// <see cref="Step"/> (the 0-based step index of the ledger; for <see cref="FaultPoint.CheckpointWrite"/> the
/// checkpoint written after <see cref="Step"/> committed steps, i.e. checkpoint-<see cref="Step"/>).
/// </summary>
public sealed record FaultSpec(string Role, FaultPoint Point, long Step)
{
    public override string ToString() => $"kill:{Role}@step={Step},point={FaultSchedule.PointName(Point)}";
}

/// <summary>
/// Parsed <c>--fault</c> schedule: <c>kill:ROLE@step=K[,point=P]</c>, several separated by ';'. Roles: worker
/// (points before-allreduce (default), after-allreduce, checkpoint-write) and loader (serve-batch, the default).
/// Pure: the node decides what "dying" means (see <see cref="FaultInjector"/>).
/// </summary>
public sealed record FaultSchedule(IReadOnlyList<FaultSpec> Faults)
{
    public static FaultSchedule None { get; } = new(Array.Empty<FaultSpec>());

    private static readonly Dictionary<string, FaultPoint> Points = new(StringComparer.Ordinal)
    {
        ["before-allreduce"] = FaultPoint.BeforeAllReduce,
        ["after-allreduce"] = FaultPoint.AfterAllReduce,
        ["checkpoint-write"] = FaultPoint.CheckpointWrite,
        ["serve-batch"] = FaultPoint.ServeBatch,
    };

    private static readonly Dictionary<string, FaultPoint[]> RolePoints = new(StringComparer.Ordinal)
    {
        ["worker"] = new[] { FaultPoint.BeforeAllReduce, FaultPoint.AfterAllReduce, FaultPoint.CheckpointWrite },
        ["loader"] = new[] { FaultPoint.ServeBatch },
    };

    public static string PointName(FaultPoint p) => Points.First(kv => kv.Value == p).Key;

    public bool IsEmpty => Faults.Count == 0;

    /// <summary>The faults that concern a node with <paramref name="roles"/>; a fault for a role the node lacks is an error.</summary>
    public FaultSchedule ForRoles(IEnumerable<string> roles)
    {
        var set = roles.ToHashSet(StringComparer.Ordinal);
        foreach (var f in Faults)
            if (!set.Contains(f.Role))
                throw new ArgumentException($"--fault '{f}': field 'role' is {f.Role}, but this node's roles are {string.Join(',', set)}");
        return this;
    }

    public FaultSpec? Match(string role, FaultPoint point, long step) =>
        Faults.FirstOrDefault(f => f.Role == role && f.Point == point && f.Step == step);

    /// <summary>Parses a schedule; a null or blank text is no fault. Errors name the offending field.</summary>
    public static FaultSchedule Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return None;
        var faults = new List<FaultSpec>();
        foreach (var part in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            faults.Add(ParseOne(part));
        return new FaultSchedule(faults);
    }

    private static FaultSpec ParseOne(string spec)
    {
        ArgumentException Bad(string field, string why) => new($"--fault '{spec}': field '{field}' {why} (expected kill:ROLE@step=K[,point=P])");
        int colon = spec.IndexOf(':');
        if (colon < 0) throw Bad("action", "is missing");
        var action = spec[..colon].Trim();
        if (action != "kill") throw Bad("action", $"is '{action}'; only 'kill' is supported");
        var rest = spec[(colon + 1)..];
        int at = rest.IndexOf('@');
        if (at < 0) throw Bad("step", "is missing");
        var role = rest[..at].Trim();
        if (!RolePoints.TryGetValue(role, out var allowed)) throw Bad("role", $"is '{role}'; expected worker or loader");
        long? step = null;
        FaultPoint? point = null;
        foreach (var kv in rest[(at + 1)..].Split(',', StringSplitOptions.TrimEntries))
        {
            int eq = kv.IndexOf('=');
            if (eq <= 0) throw Bad(kv.Length == 0 ? "step" : kv, "is not key=value");
            var key = kv[..eq].Trim();
            var value = kv[(eq + 1)..].Trim();
            switch (key)
            {
                case "step":
                    if (step is not null) throw Bad("step", "is given twice");
                    if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var k)) throw Bad("step", $"is '{value}'; expected a step index >= 0");
                    step = k;
                    break;
                case "point":
                    if (point is not null) throw Bad("point", "is given twice");
                    if (!Points.TryGetValue(value, out var p)) throw Bad("point", $"is '{value}'; expected one of {string.Join(", ", Points.Keys)}");
                    if (!allowed.Contains(p)) throw Bad("point", $"'{value}' does not happen on a {role} (its points: {string.Join(", ", allowed.Select(PointName))})");
                    point = p;
                    break;
                default:
                    throw Bad(key, "is unknown (known: step, point)");
            }
        }
        if (step is null) throw Bad("step", "is missing");
        return new FaultSpec(role, point ?? allowed[0], step.Value);
    }
}

/// <summary>
/// A node's side of a schedule: at each hook it asks whether a fault fires and, if so, dies at once with no graceful
/// leave (<see cref="Die"/> defaults to killing its own process, as kill -9 would).
/// </summary>
public sealed class FaultInjector(FaultSchedule schedule, string role, Action<FaultSpec>? die = null)
{
    public static FaultInjector None { get; } = new(FaultSchedule.None, "none");

    public Action<FaultSpec> Die { get; } = die ?? KillSelf;

    public void At(FaultPoint point, long step)
    {
        if (schedule.Match(role, point, step) is { } f) Die(f);
    }

    private static void KillSelf(FaultSpec f)
    {
        Console.Error.WriteLine($"higgs node: fault {f} fires now (killing this process)");
        Console.Error.Flush();
        System.Diagnostics.Process.GetCurrentProcess().Kill();
    }
}
