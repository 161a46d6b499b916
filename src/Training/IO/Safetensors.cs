using Microsoft.Win32.SafeHandles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.IO;

/// <summary>One entry of a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// Reader for the safetensors format (8-byte LE header length, JSON header, raw little-endian data).
/// Tensor bytes are read with positional reads straight into the destination tensor: a multi-GB checkpoint is copied
/// once, and, unlike a memory map, the file's pages stay in the page cache instead of being counted in the process's
/// resident memory (a mapped 11 GB checkpoint would double the loader's peak RSS).
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly SafeFileHandle? _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    /// <summary>The largest header read: real ones are a few MB; a claim of gigabytes is refused before allocating it.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries => _entries;
    public IEnumerable<string> Names => _entries.Keys;

    public SafetensorsFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        if (info.Length < 8) throw new InvalidDataException($"{path}: too short to be a safetensors file ({info.Length} bytes)");
        using (var fs = File.OpenRead(path))
        {
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            long headerLen = BitConverter.ToInt64(lenBytes);
            if (headerLen <= 0 || headerLen > info.Length - 8 || headerLen > MaxHeaderBytes)
                throw new InvalidDataException(
                    $"{path}: corrupt safetensors header: it claims {headerLen} bytes, but the file has {info.Length - 8} after the length and the limit is {MaxHeaderBytes}");
            var header = new byte[headerLen];
            fs.ReadExactly(header);
            _dataStart = 8 + headerLen;
            (_entries, Metadata) = ParseHeader(path, header, info.Length - _dataStart);
        }
        if (info.Length > _dataStart)
            _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLen)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header.AsMemory(0, TrimmedLength(header))); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: safetensors header is not valid JSON: {e.Message}", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: safetensors header is not a JSON object");
            return SafetensorsHeader.Parse(path, doc.RootElement, dataLen);
        }
    }

    private static int TrimmedLength(byte[] header)
    {
        int n = header.Length;
        while (n > 0 && header[n - 1] is (byte)' ' or 0) n--;
        return n;
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Loads a tensor in its stored dtype (or converted to <paramref name="as"/>) on the CPU.</summary>
    public Tensor Load(string name, ScalarType? @as = null)
    {
        var e = Entry(name);
        var stored = ToScalarType(e.DType);
        // integer data read as weights would load as garbage without an error
        if (@as is { } want && IsFloat(want) && !IsFloat(stored))
            throw new InvalidDataException($"{Path}: tensor '{name}' holds {e.DType} data where a floating-point ({FromScalarType(want)}) tensor is expected");
        var t = torch.empty(e.Shape, stored);
        if (e.ByteLength > 0) CopyInto(e, t);
        if (@as is { } target && target != t.dtype)
        {
            var converted = t.to_type(target);
            t.Dispose();
            return converted;
        }
        return t;
    }

    /// <summary>Copies the stored bytes of <paramref name="name"/> into an existing contiguous CPU tensor of the same dtype and size.</summary>
    public unsafe void CopyInto(SafetensorsEntry e, Tensor destination)
    {
        if (destination.device_type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException("destination must be a contiguous CPU tensor");
        if (destination.NumberOfElements * destination.ElementSize != e.ByteLength)
            throw new ArgumentException($"tensor '{e.Name}' has {e.ByteLength} bytes, destination {destination.NumberOfElements * destination.ElementSize}");
        if (e.ByteLength == 0) return;
        var dst = (byte*)NativeTensor.DataPointer(destination);
        const int chunk = 1 << 26;
        for (long done = 0; done < e.ByteLength;)
        {
            int len = (int)Math.Min(chunk, e.ByteLength - done);
            int n = RandomAccess.Read(_handle!, new Span<byte>(dst + done, len), _dataStart + e.Begin + done);
            if (n <= 0) throw new EndOfStreamException($"{Path}: file ended inside tensor '{e.Name}'");
            done += n;
        }
    }

    public Dictionary<string, Tensor> LoadAll(ScalarType? @as = null) =>
        _entries.Keys.ToDictionary(k => k, k => Load(k, @as), StringComparer.Ordinal);

    public static Dictionary<string, Tensor> ReadAll(string path, ScalarType? @as = null)
    {
        using var f = new SafetensorsFile(path);
        return f.LoadAll(@as);
    }

    public void Dispose() => _handle?.Dispose();

    public static bool IsFloat(ScalarType t) => t is ScalarType.Float64 or ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;

    public static int DTypeSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "U8" or "I8" or "BOOL" => 1,
        _ => throw new InvalidDataException($"unsupported safetensors dtype '{dtype}'"),
    };

    public static ScalarType ToScalarType(string dtype) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"unsupported safetensors dtype '{dtype}'"),
    };

    public static string FromScalarType(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {t} has no safetensors name"),
    };
}

/// <summary>What a safetensors writer needs to know about a tensor before its data exists.</summary>
public sealed record SafetensorsSpec(string Name, ScalarType DType, long[] Shape)
{
    public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * SafetensorsFile.DTypeSize(SafetensorsFile.FromScalarType(DType));
}

/// <summary>Writer for the safetensors format; the output is readable by Hugging Face's strict reader.</summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var byName = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in tensors)
            if (!byName.TryAdd(k, t)) throw new ArgumentException($"{path}: tensor '{k}' given twice");
        var specs = byName.Select(kv => new SafetensorsSpec(kv.Key, kv.Value.dtype, kv.Value.shape)).ToList();
        WriteStreaming(path, specs, s => byName[s.Name], metadata);
    }

    /// <summary>
    /// Writes tensors one at a time: the header is computed from <paramref name="specs"/>, then
    /// <paramref name="produce"/> is asked for each tensor in name order and its bytes are streamed out, so at most one
    /// tensor has to exist at a time. With <paramref name="disposeProduced"/> each produced tensor is disposed once written.
    /// </summary>
    public static void WriteStreaming(string path, IReadOnlyList<SafetensorsSpec> specs, Func<SafetensorsSpec, Tensor> produce,
        IReadOnlyDictionary<string, string>? metadata = null, bool disposeProduced = false)
    {
        var list = specs.OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var mo = new JsonObject();
            foreach (var (k, v) in metadata) mo[k] = v;
            header["__metadata__"] = mo;
        }
        long offset = 0;
        foreach (var s in list)
        {
            long n = s.ByteLength;
            header[s.Name] = new JsonObject
            {
                ["dtype"] = SafetensorsFile.FromScalarType(s.DType),
                ["shape"] = new JsonArray(s.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + n),
            };
            offset += n;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        int padded = (headerBytes.Length + 7) / 8 * 8;
        var tmp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(BitConverter.GetBytes((long)padded));
                fs.Write(headerBytes);
                for (int i = headerBytes.Length; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var s in list)
                {
                    var given = produce(s);
                    if (given.dtype != s.DType || !given.shape.SequenceEqual(s.Shape))
                        throw new ArgumentException($"{path}: tensor '{s.Name}' is {given.dtype} [{string.Join(",", given.shape)}], the header says {s.DType} [{string.Join(",", s.Shape)}]");
                    using (var scope = torch.NewDisposeScope())
                        WriteData(fs, given.detach().cpu().contiguous());
                    if (disposeProduced) given.Dispose();
                }
                fs.Flush(true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            throw;
        }
    }

    private static unsafe void WriteData(Stream s, Tensor t)
    {
        long n = t.NumberOfElements * t.ElementSize;
        if (n == 0) return;
        var p = (byte*)NativeTensor.DataPointer(t);
        const int chunk = 1 << 24;
        for (long off = 0; off < n; off += chunk)
        {
            int len = (int)Math.Min(chunk, n - off);
            s.Write(new ReadOnlySpan<byte>(p + off, len));
        }
    }
}

/// <summary>Raw data pointers of TorchSharp tensors (includes the view offset, works for every dtype and device).</summary>
public static class NativeTensor
{
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    public static IntPtr DataPointer(Tensor t)
    {
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero && t.NumberOfElements > 0) torch.CheckForErrors();
        return p;
    }
}
