using System.Buffers.Binary;
using System.Text;

namespace HiggsCluster.Training.Engine.Observability;

/// <summary>
/// TensorBoard event files without TensorFlow: TFRecord framing (u64 length, masked CRC-32C of the length, payload,
/// masked CRC-32C of the payload) around hand-encoded Event protobufs holding scalar summaries.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream _file;

    public string Path { get; }

    public TensorBoardWriter(string dir)
    {
        Directory.CreateDirectory(dir);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Path = System.IO.Path.Combine(dir, $"events.out.tfevents.{now}.{Environment.MachineName}");
        _file = new FileStream(Path, FileMode.Create, FileAccess.Write, FileShare.Read);
        var first = new ProtoWriter();
        first.Double(1, Wall());
        first.String(3, "brain.Event:2");
        WriteRecord(first.ToArray());
    }

    public void Scalars(long step, IEnumerable<(string Tag, double Value)> values)
    {
        var summary = new ProtoWriter();
        foreach (var (tag, v) in values)
        {
            var value = new ProtoWriter();
            value.String(1, tag);
            value.Float(2, (float)v);
            summary.Message(1, value.ToArray());
        }
        WriteSummary(step, summary);
    }

    /// <summary>An audio summary (TensorBoard's Audio tab): the clip as 16-bit WAV bytes, mono, at <paramref name="sampleRate"/>.</summary>
    public void Audio(long step, string tag, ReadOnlySpan<float> wave, int sampleRate)
    {
        var audio = new ProtoWriter();
        audio.Float(1, sampleRate);
        audio.Varint(2, 1);
        audio.Varint(3, (ulong)wave.Length);
        audio.Bytes(4, HiggsCluster.Training.Audio.WavWriter.ToBytes(wave, sampleRate));
        audio.String(5, "audio/wav");
        var value = new ProtoWriter();
        value.String(1, tag);
        value.Message(6, audio.ToArray());
        var summary = new ProtoWriter();
        summary.Message(1, value.ToArray());
        WriteSummary(step, summary);
    }

    /// <summary>One Event (wall time, step, the summary) as a TFRecord, flushed so a live TensorBoard sees it.</summary>
    private void WriteSummary(long step, ProtoWriter summary)
    {
        var ev = new ProtoWriter();
        ev.Double(1, Wall());
        ev.Varint(2, (ulong)step);
        ev.Message(5, summary.ToArray());
        WriteRecord(ev.ToArray());
        _file.Flush();
    }

    private static double Wall() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    private void WriteRecord(byte[] data)
    {
        Span<byte> head = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], Crc32C.Masked(head[..8]));
        _file.Write(head);
        _file.Write(data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, Crc32C.Masked(data));
        _file.Write(tail);
    }

    public void Dispose() => _file.Dispose();
}

/// <summary>The few protobuf wire types an Event needs.</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    private void Tag(int field, int wire) => Raw((ulong)((field << 3) | wire));

    private void Raw(ulong v)
    {
        while (v >= 0x80) { _s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        _s.WriteByte((byte)v);
    }

    public void Varint(int field, ulong v) { Tag(field, 0); Raw(v); }

    public void Double(int field, double v)
    {
        Tag(field, 1);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(b, v);
        _s.Write(b);
    }

    public void Float(int field, float v)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, v);
        _s.Write(b);
    }

    public void Bytes(int field, ReadOnlySpan<byte> data) { Tag(field, 2); Raw((ulong)data.Length); _s.Write(data); }
    public void String(int field, string s) => Bytes(field, Encoding.UTF8.GetBytes(s));
    public void Message(int field, byte[] m) => Bytes(field, m);
    public byte[] ToArray() => _s.ToArray();
}

/// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's mask.</summary>
public static class Crc32C
{
    private static readonly uint[] Table = Build();

    private static uint[] Build()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    public static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Compute(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xA282EAD8u);
    }
}
