using System.Text.Json.Nodes;
using HiggsCluster.Training.IO;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

/// <summary>An elementwise tolerance: |actual - expected| &lt;= Atol + Rtol * |expected|.</summary>
public sealed record Tolerance(double Atol, double Rtol)
{
    public static readonly Tolerance Exact = new(0, 0);
}

/// <summary>One run of one golden case: where it lives, its case.json and its run entry.</summary>
public sealed class GoldenRun
{
    public GoldenRun(string root, string area, string caseDir, JsonObject @case, JsonObject run)
    {
        Root = root; Area = area; CaseDir = caseDir; Case = @case; Run = run;
    }

    public string Root { get; }
    public string Area { get; }
    public string CaseDir { get; }
    public JsonObject Case { get; }
    public JsonObject Run { get; }
    public string CaseName => System.IO.Path.GetFileName(CaseDir);
    public string RunName => Run["name"]?.GetValue<string>() ?? "?";
    public string Label => $"{Root.TrimEnd('/')}/{Area}/{CaseName}/{RunName}";
    public JsonObject CaseParameters => Case["parameters"] as JsonObject ?? new JsonObject();
    public JsonObject RunParameters => Run["parameters"] as JsonObject ?? new JsonObject();
    public JsonObject? ExpectError => Run["expect_error"] as JsonObject;

    public string File(string name) => System.IO.Path.Combine(CaseDir, name);

    /// <summary>The run's inputs file: <c>run.inputs</c> when it is a string, else inputs.safetensors.</summary>
    public string InputsPath =>
        File(Run["inputs"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "inputs.safetensors");

    public Dictionary<string, Tensor> LoadInputs() => LoadUnpacked(InputsPath);

    /// <summary>Expected tensors with packed mel tensors unpacked and <c>expected_rows</c> applied.</summary>
    public Dictionary<string, Tensor> LoadExpected()
    {
        var path = Run["expected"]?.GetValue<string>() ?? throw new InvalidDataException($"{Label}: run has neither 'expected' nor 'expect_error'");
        var all = LoadUnpacked(File(path));
        if (Run["expected_rows"] is JsonArray rows)
        {
            var idx = tensor(rows.Select(r => r!.GetValue<long>()).ToArray());
            foreach (var k in all.Keys.ToList()) all[k] = all[k].index_select(0, idx);
        }
        return all;
    }

    public static Dictionary<string, Tensor> LoadUnpacked(string path)
    {
        var raw = SafetensorsFile.ReadAll(path);
        return PackedMel.UnpackAll(raw);
    }

    /// <summary>Exact name, else a pattern ending in '*', else "default", else exact.</summary>
    public Tolerance ToleranceFor(string name)
    {
        if (Case["tolerances"] is not JsonObject tol) return Tolerance.Exact;
        if (tol[name] is JsonObject exact) return Parse(exact);
        JsonObject? best = null; int bestLen = -1;
        foreach (var (k, v) in tol)
        {
            if (k.EndsWith('*') && name.StartsWith(k[..^1], StringComparison.Ordinal) && k.Length > bestLen && v is JsonObject o)
            { best = o; bestLen = k.Length; }
        }
        if (best != null) return Parse(best);
        return tol["default"] is JsonObject d ? Parse(d) : Tolerance.Exact;
    }

    private static Tolerance Parse(JsonObject o) =>
        new(o["atol"]?.GetValue<double>() ?? 0, o["rtol"]?.GetValue<double>() ?? 0);
}

/// <summary>The "<c>X__frames/__tail/__packed/__shape</c>" layout used for Whisper features in the goldens.</summary>
public static class PackedMel
{
    public static Dictionary<string, Tensor> UnpackAll(Dictionary<string, Tensor> raw)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in raw)
        {
            if (k.EndsWith("__shape", StringComparison.Ordinal))
            {
                var name = k[..^"__shape".Length];
                result[name] = Unpack(raw[name + "__shape"], raw[name + "__frames"], raw[name + "__tail"], raw[name + "__packed"]);
            }
            else if (!k.Contains("__", StringComparison.Ordinal)) result[k] = v;
        }
        return result;
    }

    public static Tensor Unpack(Tensor shape, Tensor frames, Tensor tail, Tensor packed)
    {
        var s = shape.data<long>().ToArray();
        var full = empty(s, ScalarType.Float32);
        long n = s[0], bins = s[1];
        long off = 0;
        for (long i = 0; i < n; i++)
        {
            long f = frames[i].item<long>();
            full[i].FillInPlace(tail[i].item<float>());
            if (f > 0)
            {
                full[i, .., ..(int)f] = packed[(int)off..(int)(off + bins * f)].reshape(bins, f);
                off += bins * f;
            }
        }
        return full;
    }
}
