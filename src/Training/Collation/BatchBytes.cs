using static TorchSharp.torch;

namespace HiggsCluster.Training.Collation;

/// <summary>
/// One collated field as plain bytes (row-major, little-endian) with its safetensors dtype name ("I64", "F32", …), for
/// sending a batch between nodes.
/// </summary>
public sealed record FieldBytes(string Name, string DType, long[] Shape, byte[] Data);

/// <summary>
/// A <see cref="HiggsBatch"/> as named byte arrays and back, bit for bit (the cluster's serializer carries these; a
/// worker trains on exactly the tensors the loader collated).
/// </summary>
public static class BatchBytes
{
    public static List<FieldBytes> Encode(HiggsBatch b)
    {
        var list = new List<FieldBytes>();
        foreach (var (name, t) in b.ToNamedTensors())
        {
            using var c = t.detach().cpu().contiguous();
            list.Add(new FieldBytes(name, IO.SafetensorsFile.FromScalarType(c.dtype), c.shape, c.bytes.ToArray()));
        }
        return list;
    }

    /// <summary>Tensors are created in the caller's DisposeScope, on <paramref name="device"/>.</summary>
    public static HiggsBatch Decode(IEnumerable<FieldBytes> fields, Device? device = null)
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var f in fields)
        {
            if (!HiggsBatch.FieldNames.Contains(f.Name)) throw new InvalidDataException($"batch field '{f.Name}' is not a Higgs batch field");
            var t = empty(f.Shape, IO.SafetensorsFile.ToScalarType(f.DType));
            long want = t.numel() * t.ElementSize;
            if (want != f.Data.LongLength) throw new InvalidDataException($"batch field '{f.Name}': {f.DType} [{string.Join(',', f.Shape)}] needs {want} bytes, got {f.Data.LongLength}");
            if (want > 0) t.bytes = f.Data;
            d[f.Name] = device is null || device.type == TorchSharp.DeviceType.CPU ? t : t.to(device);
        }
        return HiggsBatch.FromNamedTensors(d);
    }
}
