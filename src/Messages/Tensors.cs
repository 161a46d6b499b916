namespace HiggsCluster.Messages;

/// <summary>Element types a tensor may carry over the wire (no TorchSharp here: the receiver rebuilds the tensor).</summary>
public enum TensorDType : byte
{
    Float32 = 1,
    Float16 = 2,
    BFloat16 = 3,
    Int64 = 4,
    Int32 = 5,
    UInt8 = 6,
    Bool = 7,
}

public static class TensorDTypes
{
    /// <summary>The safetensors dtype name (the format both sides of the wire already share).</summary>
    public static string ToSafetensorsName(TensorDType t) => t switch
    {
        TensorDType.Float32 => "F32", TensorDType.Float16 => "F16", TensorDType.BFloat16 => "BF16", TensorDType.Int64 => "I64",
        TensorDType.Int32 => "I32", TensorDType.UInt8 => "U8", TensorDType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown tensor dtype"),
    };

    public static TensorDType FromSafetensorsName(string name) => name switch
    {
        "F32" => TensorDType.Float32, "F16" => TensorDType.Float16, "BF16" => TensorDType.BFloat16, "I64" => TensorDType.Int64,
        "I32" => TensorDType.Int32, "U8" => TensorDType.UInt8, "BOOL" => TensorDType.Bool,
        _ => throw new InvalidDataException($"tensor dtype '{name}' cannot travel between nodes"),
    };

    public static int ElementSize(TensorDType t) => t switch
    {
        TensorDType.Float32 or TensorDType.Int32 => 4,
        TensorDType.Float16 or TensorDType.BFloat16 => 2,
        TensorDType.Int64 => 8,
        TensorDType.UInt8 or TensorDType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown tensor dtype"),
    };
}

/// <summary>A dense row-major tensor as dtype + shape + little-endian bytes.</summary>
public sealed record TensorData(TensorDType DType, long[] Shape, byte[] Data) : IBulkMessage
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>Throws when the byte count does not match dtype × shape; <paramref name="what"/> names the tensor.</summary>
    public void Validate(string what)
    {
        foreach (var d in Shape)
            if (d < 0) throw new InvalidDataException($"tensor '{what}': negative dimension in shape [{string.Join(',', Shape)}]");
        long want = ElementCount * TensorDTypes.ElementSize(DType);
        if (want != Data.LongLength)
            throw new InvalidDataException($"tensor '{what}': {DType} [{string.Join(',', Shape)}] needs {want} bytes, got {Data.LongLength}");
    }

    public static TensorData FromFloats(ReadOnlySpan<float> values, params long[] shape)
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray();
        var t = new TensorData(TensorDType.Float32, shape, bytes);
        t.Validate("float tensor");
        return t;
    }

    public static TensorData FromLongs(ReadOnlySpan<long> values, params long[] shape)
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray();
        var t = new TensorData(TensorDType.Int64, shape, bytes);
        t.Validate("long tensor");
        return t;
    }

    public ReadOnlySpan<float> AsFloats() => DType == TensorDType.Float32
        ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Data)
        : throw new InvalidOperationException($"tensor is {DType}, not Float32");

    public ReadOnlySpan<long> AsLongs() => DType == TensorDType.Int64
        ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(Data)
        : throw new InvalidOperationException($"tensor is {DType}, not Int64");

    /// <summary>Content equality (records compare arrays by reference).</summary>
    public bool SameAs(TensorData o) => DType == o.DType && Shape.AsSpan().SequenceEqual(o.Shape) && Data.AsSpan().SequenceEqual(o.Data);
}

public sealed record NamedTensor(string Name, TensorData Tensor);
