using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

public enum GoldenStatus { Pass, Fail, Skip }

public sealed record GoldenResult(string Label, string Area, GoldenStatus Status, double WorstError, string Detail)
{
    public string Line => $"{Status.ToString().ToUpperInvariant()} {Label} {(Status == GoldenStatus.Skip ? Detail : WorstError.ToString("G3"))}"
                          + (Status == GoldenStatus.Fail ? $"  {Detail}" : "");
}

/// <summary>
/// Iterates every run of every case of every area under each golden root and checks it against the port.
/// Used by the xunit suite (Category=Golden) and by `higgs golden check`.
/// </summary>
public static class GoldenHarness
{
    public const string ExtraRootsVariable = "HIGGS_EXTRA_GOLDENS";

    /// <summary>The given roots (or the default) plus every root named in HIGGS_EXTRA_GOLDENS.</summary>
    public static IReadOnlyList<string> ResolveRoots(IEnumerable<string>? explicitRoots, string defaultRoot)
    {
        var roots = new List<string>();
        var given = explicitRoots?.ToList() ?? new List<string>();
        roots.AddRange(given.Count > 0 ? given : new[] { defaultRoot });
        var extra = Environment.GetEnvironmentVariable(ExtraRootsVariable);
        if (!string.IsNullOrWhiteSpace(extra))
            roots.AddRange(extra.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return roots.Distinct().ToList();
    }

    public static IEnumerable<GoldenRun> Enumerate(IEnumerable<string> roots, string? areaFilter = null)
    {
        foreach (var root in roots)
        {
            if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"golden root not found: {root}");
            foreach (var areaDir in Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal))
            {
                var area = Path.GetFileName(areaDir);
                if (areaFilter != null && area != areaFilter) continue;
                foreach (var caseDir in Directory.GetDirectories(areaDir).OrderBy(d => d, StringComparer.Ordinal))
                {
                    var caseFile = Path.Combine(caseDir, "case.json");
                    if (!File.Exists(caseFile)) continue;
                    var c = JsonNode.Parse(File.ReadAllText(caseFile))!.AsObject();
                    foreach (var r in c["runs"]!.AsArray())
                        yield return new GoldenRun(root, area, caseDir, c, r!.AsObject());
                }
            }
        }
    }

    public static GoldenResult Check(GoldenRun run, IReadOnlyDictionary<string, IGoldenArea> areas)
    {
        if (!areas.TryGetValue(run.Area, out var area))
            return new GoldenResult(run.Label, run.Area, GoldenStatus.Skip, 0, $"area '{run.Area}' is not implemented by this build");
        using var scope = torch.NewDisposeScope();
        if (run.ExpectError is { } err)
        {
            try
            {
                area.Compute(run);
                return new GoldenResult(run.Label, run.Area, GoldenStatus.Fail, 0,
                    $"upstream raises {err["type"]} here but the port returned data");
            }
            catch (Exception e)
            {
                // any exception is not enough: it must be the refusal upstream's error stands for
                return ExpectedRefusal.Mismatch(err, e) is { } why
                    ? new GoldenResult(run.Label, run.Area, GoldenStatus.Fail, double.PositiveInfinity, why)
                    : new GoldenResult(run.Label, run.Area, GoldenStatus.Pass, 0, $"refused: {e.Message}");
            }
        }
        GoldenOutputs actual;
        Dictionary<string, Tensor> expected;
        try
        {
            expected = run.LoadExpected();
            actual = area.Compute(run);
        }
        catch (Exception e)
        {
            return new GoldenResult(run.Label, run.Area, GoldenStatus.Fail, double.NaN, $"{e.GetType().Name}: {e.Message}");
        }
        var failures = new List<string>(actual.Failures);
        double worst = actual.AreaWorstError;
        foreach (var (name, exp) in expected.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (actual.CheckedByArea.Contains(name)) continue;
            if (!actual.Tensors.TryGetValue(name, out var act))
            {
                failures.Add($"{name}: not produced");
                continue;
            }
            actual.CompareWhere.TryGetValue(name, out var where);
            var (ok, e2, msg) = TensorCompare.Compare(name, act, exp, run.ToleranceFor(name), where);
            worst = Math.Max(worst, e2);
            if (!ok) failures.Add(msg);
        }
        return failures.Count == 0
            ? new GoldenResult(run.Label, run.Area, GoldenStatus.Pass, worst, "")
            : new GoldenResult(run.Label, run.Area, GoldenStatus.Fail, worst, string.Join("; ", failures));
    }
}

public static class TensorCompare
{
    /// <summary>Shapes must be equal; integers/masks exactly; floats within tolerance (optionally only where <paramref name="where"/>).</summary>
    public static (bool Ok, double WorstError, string Message) Compare(string name, Tensor actual, Tensor expected, Tolerance tol, Tensor? where = null)
    {
        var aShape = actual.shape; var eShape = expected.shape;
        if (!aShape.SequenceEqual(eShape))
            return (false, double.PositiveInfinity, $"{name}: shape [{string.Join(",", aShape)}] != expected [{string.Join(",", eShape)}]");
        if (expected.NumberOfElements == 0) return (true, 0, "");
        var a = actual.detach().cpu().to_type(ScalarType.Float64);
        var e = expected.detach().cpu().to_type(ScalarType.Float64);
        if (where is not null)
        {
            var m = where.cpu().to_type(ScalarType.Bool);
            a = a[m]; e = e[m];
            if (e.NumberOfElements == 0) return (true, 0, "");
        }
        bool isFloat = expected.dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;
        var diff = (a - e).abs();
        var nan = a.isnan().logical_xor(e.isnan());
        double worst = diff.nan_to_num(0).max().item<double>();
        if (nan.any().item<bool>()) return (false, double.NaN, $"{name}: NaN where expected is finite (or the reverse)");
        if (!isFloat)
        {
            long bad = diff.Gt(0).sum().item<long>();
            return bad == 0 ? (true, worst, "") : (false, worst, $"{name}: {bad} of {e.NumberOfElements} values differ (max |Δ| {worst:G4})");
        }
        var allowed = e.abs().Times(tol.Rtol).Plus(tol.Atol);
        var over = diff.nan_to_num(0).gt(allowed);
        long nOver = over.sum().item<long>();
        if (nOver == 0) return (true, worst, "");
        long first = over.flatten().nonzero()[0, 0].item<long>();
        return (false, worst, $"{name}: {nOver} of {e.NumberOfElements} values outside atol {tol.Atol:G3} rtol {tol.Rtol:G3} (max |Δ| {worst:G4}; first at flat index {first}: {a.flatten()[first].item<double>():G8} vs {e.flatten()[first].item<double>():G8})");
    }
}
