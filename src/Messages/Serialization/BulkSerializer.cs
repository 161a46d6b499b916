using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Akka.Actor;
using Akka.Serialization;

namespace HiggsCluster.Messages.Serialization;

/// <summary>
/// Byte-oriented serializer for tensors and batches: sizes first, one exact allocation, raw little-endian
/// element bytes block-copied (Hyperion walks float arrays element by element, about 15x slower).
/// </summary>
public sealed class BulkSerializer : SerializerWithStringManifest
{
    /// <summary>Outside Akka's reserved 0–100.</summary>
    public const int SerializerId = 7731;

    public const string BatchManifest = "B1";
    public const string SnapshotManifest = "S1";
    public const string TensorManifest = "T1";

    public BulkSerializer(ExtendedActorSystem system) : base(system)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("the bulk wire format copies element bytes as-is and assumes a little-endian host");
    }

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => o switch
    {
        BatchDelivery => BatchManifest,
        TensorSnapshot => SnapshotManifest,
        TensorData => TensorManifest,
        _ => throw new ArgumentException($"BulkSerializer cannot serialize {o.GetType().FullName}"),
    };

    public override byte[] ToBinary(object obj) => Encode(obj);

    public override object FromBinary(byte[] bytes, string manifest) => Decode(bytes, manifest);

    /// <summary>Bytes the message will take, so a sender can refuse one above the remoting frame instead of losing it.</summary>
    public static long EncodedSize(object obj) => obj switch
    {
        BatchDelivery b => SizeOf(b.RunId) + 8 + 4 + 8 + 4 + 4 + 4 + 8L * b.SampleIds.Length + SizeOf(b.Tensors),
        TensorSnapshot s => SizeOf(s.RunId) + 8 + SizeOf(s.Tensors),
        TensorData t => SizeOf(t),
        _ => throw new ArgumentException($"BulkSerializer cannot serialize {obj.GetType().FullName}"),
    };

    public static byte[] Encode(object obj)
    {
        long size = EncodedSize(obj);
        if (size > Array.MaxLength) throw new InvalidOperationException($"message of {size} bytes is too large to encode");
        var buf = new byte[size];
        var w = new Writer(buf);
        switch (obj)
        {
            case BatchDelivery b:
                w.String(b.RunId); w.Long(b.Generation); w.Int(b.Epoch); w.Long(b.Step); w.Int(b.Rank); w.Int(b.Micro);
                w.Longs(b.SampleIds); w.Tensors(b.Tensors);
                break;
            case TensorSnapshot s:
                w.String(s.RunId); w.Long(s.Step); w.Tensors(s.Tensors);
                break;
            case TensorData t:
                w.Tensor(t, "tensor");
                break;
        }
        if (w.Position != buf.Length) throw new InvalidOperationException($"BulkSerializer size mismatch: {w.Position} written, {buf.Length} planned");
        return buf;
    }

    public static object Decode(byte[] bytes, string manifest)
    {
        var r = new Reader(bytes, manifest);
        object result = manifest switch
        {
            BatchManifest => new BatchDelivery(r.String(), r.Long(), r.Int(), r.Long(), r.Int(), r.Int(), r.Longs(), r.Tensors()),
            SnapshotManifest => new TensorSnapshot(r.String(), r.Long(), r.Tensors()),
            TensorManifest => r.Tensor("tensor"),
            _ => throw new System.Runtime.Serialization.SerializationException($"BulkSerializer: unknown manifest '{manifest}'"),
        };
        r.End();
        return result;
    }

    private static long SizeOf(string s) => 4 + Encoding.UTF8.GetByteCount(s);
    private static long SizeOf(TensorData t) => 1 + 4 + 8L * t.Shape.Length + 8 + t.Data.LongLength;
    private static long SizeOf(NamedTensor[] ts)
    {
        long n = 4;
        foreach (var t in ts) n += SizeOf(t.Name) + SizeOf(t.Tensor);
        return n;
    }

    private ref struct Writer(byte[] buf)
    {
        private readonly Span<byte> _b = buf;
        public int Position;

        public void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(_b[Position..], v); Position += 4; }
        public void Long(long v) { BinaryPrimitives.WriteInt64LittleEndian(_b[Position..], v); Position += 8; }
        public void Byte(byte v) { _b[Position++] = v; }

        public void String(string s)
        {
            int n = Encoding.UTF8.GetBytes(s, _b[(Position + 4)..]);
            Int(n);
            Position += n;
        }

        public void Longs(long[] v)
        {
            Int(v.Length);
            MemoryMarshal.AsBytes(v.AsSpan()).CopyTo(_b[Position..]);
            Position += v.Length * 8;
        }

        public void Tensor(TensorData t, string name)
        {
            t.Validate(name);
            Byte((byte)t.DType);
            Longs(t.Shape);
            Long(t.Data.LongLength);
            t.Data.CopyTo(_b[Position..]);
            Position += t.Data.Length;
        }

        public void Tensors(NamedTensor[] ts)
        {
            Int(ts.Length);
            foreach (var t in ts) { String(t.Name); Tensor(t.Tensor, t.Name); }
        }
    }

    private ref struct Reader(byte[] buf, string manifest)
    {
        private readonly ReadOnlySpan<byte> _b = buf;
        private int _pos;

        private ReadOnlySpan<byte> Take(long n, string what)
        {
            if (n < 0 || n > _b.Length - _pos)
                throw new System.Runtime.Serialization.SerializationException(
                    $"BulkSerializer ({manifest}): {what} needs {n} bytes at offset {_pos}, only {_b.Length - _pos} left (truncated or corrupt message)");
            var s = _b.Slice(_pos, (int)n);
            _pos += (int)n;
            return s;
        }

        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4, "int32"));
        public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Take(8, "int64"));
        public string String() => Encoding.UTF8.GetString(Take(Int(), "string"));
        public long[] Longs()
        {
            int n = Int();
            return MemoryMarshal.Cast<byte, long>(Take(8L * n, "int64 array")).ToArray();
        }

        public TensorData Tensor(string name)
        {
            var dtype = (TensorDType)Take(1, "dtype")[0];
            if (!Enum.IsDefined(dtype)) throw new System.Runtime.Serialization.SerializationException($"BulkSerializer ({manifest}): tensor '{name}' has unknown dtype {(byte)dtype}");
            var shape = Longs();
            long n = Long();
            var t = new TensorData(dtype, shape, Take(n, $"tensor '{name}' data").ToArray());
            try { t.Validate(name); }
            catch (InvalidDataException e) { throw new System.Runtime.Serialization.SerializationException($"BulkSerializer ({manifest}): {e.Message}", e); }
            return t;
        }

        public NamedTensor[] Tensors()
        {
            int n = Int();
            if (n < 0) throw new System.Runtime.Serialization.SerializationException($"BulkSerializer ({manifest}): negative tensor count");
            var ts = new NamedTensor[n];
            for (int i = 0; i < n; i++)
            {
                var name = String();
                ts[i] = new NamedTensor(name, Tensor(name));
            }
            return ts;
        }

        public void End()
        {
            if (_pos != _b.Length)
                throw new System.Runtime.Serialization.SerializationException($"BulkSerializer ({manifest}): {_b.Length - _pos} trailing bytes");
        }
    }
}
