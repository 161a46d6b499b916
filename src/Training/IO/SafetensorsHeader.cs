using System.Text.Json;

namespace HiggsCluster.Training.IO;

/// <summary>
/// Validates a safetensors header before any tensor is read: a file that lies about its contents must be one
/// line naming the file and the tensor, never a crash or tensors silently loaded from the wrong bytes.
/// Checked: every key once, dtype a known string, shape a list of non-negative integers whose byte size matches the
/// declared offsets, offsets inside the data and no two tensors sharing bytes.
/// </summary>
internal static class SafetensorsHeader
{
    public static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) Parse(string path, JsonElement root, long dataLen)
    {
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in root.EnumerateObject())
        {
            var name = prop.Name;
            if (!seen.Add(name)) throw Bad(path, name, "appears twice in the header");
            if (name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(path, name, "must be an object of strings");
                foreach (var m in prop.Value.EnumerateObject())
                    meta[m.Name] = m.Value.ValueKind switch
                    {
                        JsonValueKind.String => m.Value.GetString()!,
                        JsonValueKind.Null => "",
                        _ => throw Bad(path, name, $"value of '{m.Name}' is not a string"),
                    };
                continue;
            }
            entries[name] = Entry(path, name, prop.Value, dataLen);
        }
        CheckNoOverlap(path, entries.Values);
        return (entries, meta);
    }

    private static SafetensorsEntry Entry(string path, string name, JsonElement o, long dataLen)
    {
        if (o.ValueKind != JsonValueKind.Object) throw Bad(path, name, "is not an object with dtype, shape and data_offsets");
        if (!o.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad(path, name, "has no string 'dtype'");
        var dtype = dt.GetString()!;
        int size;
        try { size = SafetensorsFile.DTypeSize(dtype); }
        catch (InvalidDataException) { throw Bad(path, name, $"has the unsupported dtype '{dtype}'"); }
        var shape = Longs(path, name, o, "shape", null);
        var offs = Longs(path, name, o, "data_offsets", 2);
        if (offs[1] < offs[0] || offs[1] > dataLen)
            throw Bad(path, name, $"has data offsets [{offs[0]}, {offs[1]}] outside the {dataLen} data bytes");
        long expected;
        try { expected = checked(shape.Aggregate(1L, (a, b) => a * b) * size); }
        catch (OverflowException) { throw Bad(path, name, $"has a shape [{string.Join(",", shape)}] too large to address"); }
        if (expected != offs[1] - offs[0])
            throw Bad(path, name, $"({dtype} [{string.Join(",", shape)}]) needs {expected} bytes, its data offsets declare {offs[1] - offs[0]}");
        return new SafetensorsEntry(name, dtype, shape, offs[0], offs[1]);
    }

    private static long[] Longs(string path, string name, JsonElement o, string key, int? count)
    {
        if (!o.TryGetProperty(key, out var a) || a.ValueKind != JsonValueKind.Array) throw Bad(path, name, $"has no '{key}' list");
        var values = new List<long>();
        foreach (var x in a.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out var v) || v < 0)
                throw Bad(path, name, $"has a '{key}' entry that is not a non-negative integer ({x.GetRawText()})");
            values.Add(v);
        }
        if (count is { } n && values.Count != n) throw Bad(path, name, $"has {values.Count} '{key}' values, needs {n}");
        return values.ToArray();
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafetensorsEntry> entries)
    {
        SafetensorsEntry? previous = null;
        foreach (var e in entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
        {
            if (previous is { } p && e.Begin < p.End)
                throw Bad(path, e.Name, $"shares data bytes with tensor '{p.Name}' (offsets [{e.Begin}, {e.End}] and [{p.Begin}, {p.End}])");
            previous = e;
        }
    }

    private static InvalidDataException Bad(string path, string tensor, string what) => new($"{path}: tensor '{tensor}' {what}");
}
