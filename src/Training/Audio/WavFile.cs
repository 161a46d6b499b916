using System.Buffers.Binary;
using System.Text;

namespace HiggsCluster.Training.Audio;

/// <summary>Sample encodings the WAV reader and writer handle.</summary>
public enum WavSampleFormat { Pcm8, Pcm16, Pcm24, Pcm32, Float32, Float64 }

/// <summary>What a WAV header says about its data chunk.</summary>
public sealed record WavInfo(int Channels, int SampleRate, WavSampleFormat Format, long DataOffset, long Frames)
{
    public int BytesPerSample => Format switch
    {
        WavSampleFormat.Pcm8 => 1, WavSampleFormat.Pcm16 => 2, WavSampleFormat.Pcm24 => 3,
        WavSampleFormat.Pcm32 or WavSampleFormat.Float32 => 4, _ => 8,
    };
    public int BlockAlign => Channels * BytesPerSample;
}

/// <summary>
/// RIFF/WAVE (and RF64) reader: integer PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE.
/// Scaling follows libsndfile, which librosa uses: int / 2^(bits-1), 8-bit unsigned around 128, float as is.
/// Channels are down-mixed by their mean.
/// </summary>
public static class WavReader
{
    private const uint Streamed = 0xFFFFFFFF;
    // The 14 bytes after the format tag in every KSDATAFORMAT_SUBTYPE_* GUID.
    private static readonly byte[] KsGuidTail = { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71 };

    /// <summary>True when the bytes start like a RIFF/RF64 WAVE file.</summary>
    public static bool LooksLikeWav(ReadOnlySpan<byte> head) =>
        head.Length >= 12 && (head[..4].SequenceEqual("RIFF"u8) || head[..4].SequenceEqual("RF64"u8)) && head[8..12].SequenceEqual("WAVE"u8);

    public static AudioClip Read(string path, double? offset = null, double? duration = null)
    {
        if (!File.Exists(path)) throw new AudioInputException(path, "file not found");
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(fs, path, offset, duration);
    }

    /// <summary>Reads a seekable stream holding a whole WAV file; <paramref name="name"/> is used in error messages.</summary>
    public static AudioClip Read(Stream stream, string name, double? offset = null, double? duration = null)
    {
        var info = ReadInfo(stream, name);
        var (start, count) = FrameRange.Select(info.Frames, info.SampleRate, offset, duration, name);
        return new AudioClip(ReadMono(stream, info, start, count, name), info.SampleRate);
    }

    public static WavInfo ReadInfo(Stream s, string name)
    {
        if (!s.CanSeek) throw new ArgumentException("the WAV reader needs a seekable stream", nameof(s));
        s.Position = 0;
        long length = s.Length;
        Span<byte> head = stackalloc byte[12];
        if (ReadFully(s, head) < 12)
            throw new AudioInputException(name, $"truncated WAV header: the file has only {length} bytes");
        bool rf64 = head[..4].SequenceEqual("RF64"u8);
        if (!LooksLikeWav(head))
            throw new AudioInputException(name, "not a RIFF/WAVE file (no RIFF/RF64 ... WAVE signature in its first 12 bytes)");

        long? ds64Data = null;
        (int Channels, int Rate, WavSampleFormat Format)? fmt = null;
        Span<byte> ck = stackalloc byte[8];
        while (true)
        {
            long at = s.Position;
            int got = ReadFully(s, ck);
            if (got == 0) break;
            if (got < 8) throw new AudioInputException(name, $"truncated WAV header: chunk header at byte {at} is cut off");
            string id = Encoding.ASCII.GetString(ck[..4]);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(ck[4..]);
            long body = s.Position;
            switch (id)
            {
                case "ds64":
                {
                    var b = ReadChunkBody(s, size, 28, name, id);
                    ds64Data = (long)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8));
                    break;
                }
                case "fmt ":
                    fmt = ParseFmt(ReadChunkBody(s, size, 16, name, id), name);
                    break;
                case "data":
                {
                    if (fmt is not { } f) throw new AudioInputException(name, "corrupt WAV: the data chunk comes before the fmt chunk");
                    long bytes = rf64 && size == Streamed && ds64Data.HasValue ? ds64Data.Value : size;
                    // A streamed writer (e.g. ffmpeg into a pipe) leaves the size at 0xFFFFFFFF; a truncated copy
                    // declares more than there is. Like libsndfile, use the whole frames that are present.
                    if ((size == Streamed && !rf64) || body + bytes > length) bytes = length - body;
                    var info = new WavInfo(f.Channels, f.Rate, f.Format, body, 0);
                    return info with { Frames = bytes / info.BlockAlign };
                }
            }
            long next = body + size + (size & 1);
            if (id != "fmt " && id != "ds64" && next > length)
                throw new AudioInputException(name, $"truncated WAV: chunk '{Printable(ck[..4])}' at byte {at} declares {size} bytes but the file ends before any data chunk");
            s.Position = next;
        }
        if (fmt is null) throw new AudioInputException(name, "corrupt WAV: no fmt chunk");
        throw new AudioInputException(name, "corrupt WAV: no data chunk");
    }

    private static byte[] ReadChunkBody(Stream s, uint size, int minSize, string name, string id)
    {
        if (size < minSize) throw new AudioInputException(name, $"corrupt WAV header: '{id}' chunk has {size} bytes, needs at least {minSize}");
        if (size > 1 << 20) throw new AudioInputException(name, $"corrupt WAV header: '{id}' chunk claims {size} bytes");
        var b = new byte[size];
        if (ReadFully(s, b) < size) throw new AudioInputException(name, $"truncated WAV header: the '{id}' chunk is cut off");
        if ((size & 1) == 1 && s.Position < s.Length) s.Position++;
        return b;
    }

    private static (int, int, WavSampleFormat) ParseFmt(byte[] b, string name)
    {
        int tag = BinaryPrimitives.ReadUInt16LittleEndian(b);
        int channels = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(2));
        uint rate = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4));
        int blockAlign = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(12));
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(14));
        if (tag == 0xFFFE)
        {
            if (b.Length < 40) throw new AudioInputException(name, $"corrupt WAV header: WAVE_FORMAT_EXTENSIBLE fmt chunk has {b.Length} bytes, needs 40");
            if (!b.AsSpan(26, 14).SequenceEqual(KsGuidTail))
                throw new AudioInputException(name, "unsupported WAV encoding: WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID");
            tag = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(24));
        }
        if (channels == 0) throw new AudioInputException(name, "corrupt WAV header: 0 channels");
        if (rate == 0 || rate > int.MaxValue) throw new AudioInputException(name, $"corrupt WAV header: sample rate {rate}");
        WavSampleFormat format = (tag, bits) switch
        {
            (1, 8) => WavSampleFormat.Pcm8,
            (1, 16) => WavSampleFormat.Pcm16,
            (1, 24) => WavSampleFormat.Pcm24,
            (1, 32) => WavSampleFormat.Pcm32,
            (3, 32) => WavSampleFormat.Float32,
            (3, 64) => WavSampleFormat.Float64,
            (1, _) => throw new AudioInputException(name, $"unsupported WAV encoding: integer PCM with {bits} bits per sample (8, 16, 24 and 32 are supported)"),
            (3, _) => throw new AudioInputException(name, $"unsupported WAV encoding: IEEE float with {bits} bits per sample (32 and 64 are supported)"),
            _ => throw new AudioInputException(name, $"unsupported WAV encoding: format tag 0x{tag:X4} ({TagName(tag)}); only integer PCM and IEEE float are read, convert it with e.g. ffmpeg -c:a pcm_s16le"),
        };
        int expectedAlign = channels * (bits / 8);
        if (blockAlign != expectedAlign)
            throw new AudioInputException(name, $"corrupt WAV header: block align {blockAlign} does not match {channels} channel(s) of {bits} bits ({expectedAlign})");
        return (channels, (int)rate, format);
    }

    private static string TagName(int tag) => tag switch
    {
        2 => "Microsoft ADPCM", 6 => "A-law", 7 => "mu-law", 0x11 => "IMA ADPCM", 0x31 => "GSM 6.10",
        0x50 => "MPEG", 0x55 => "MPEG layer 3", _ => "unknown",
    };

    /// <summary>Frames [start, start+count) down-mixed to mono by the channel mean.</summary>
    public static float[] ReadMono(Stream s, WavInfo info, long start, long count, string name)
    {
        if (count > int.MaxValue) throw new AudioInputException(name, $"{count} frames do not fit in one array; pass a shorter duration");
        var result = new float[count];
        int align = info.BlockAlign, ch = info.Channels;
        const int chunkFrames = 1 << 15;
        var buffer = new byte[chunkFrames * align];
        s.Position = info.DataOffset + start * align;
        long done = 0;
        while (done < count)
        {
            int frames = (int)Math.Min(chunkFrames, count - done);
            int want = frames * align;
            int got = ReadFully(s, buffer.AsSpan(0, want));
            if (got < want) throw new AudioInputException(name, "truncated WAV: the data ended while reading");
            var span = buffer.AsSpan(0, want);
            for (int f = 0; f < frames; f++)
            {
                var frame = span.Slice(f * align, align);
                if (ch == 1) result[done + f] = (float)Sample(frame, info.Format);
                else
                {
                    // librosa's to_mono is np.mean over float32 channels: a float32 running sum, then a float32 divide.
                    float sum = 0;
                    for (int c = 0; c < ch; c++) sum += (float)Sample(frame[(c * info.BytesPerSample)..], info.Format);
                    result[done + f] = sum / ch;
                }
            }
            done += frames;
        }
        return result;
    }

    private static double Sample(ReadOnlySpan<byte> b, WavSampleFormat format) => format switch
    {
        WavSampleFormat.Pcm8 => (b[0] - 128) / 128.0,
        WavSampleFormat.Pcm16 => BinaryPrimitives.ReadInt16LittleEndian(b) / 32768.0,
        WavSampleFormat.Pcm24 => ((b[0] | (b[1] << 8) | (b[2] << 16)) << 8 >> 8) / 8388608.0,
        WavSampleFormat.Pcm32 => BinaryPrimitives.ReadInt32LittleEndian(b) / 2147483648.0,
        WavSampleFormat.Float32 => BinaryPrimitives.ReadSingleLittleEndian(b),
        _ => BinaryPrimitives.ReadDoubleLittleEndian(b),
    };

    private static int ReadFully(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private static string Printable(ReadOnlySpan<byte> b)
    {
        var sb = new StringBuilder();
        foreach (var c in b) sb.Append(c is >= 0x20 and < 0x7F ? (char)c : '?');
        return sb.ToString();
    }
}

/// <summary>WAV writer (RIFF, or WAVE_FORMAT_EXTENSIBLE when asked) for interleaved float samples.</summary>
public static class WavWriter
{
    public static void Write(string path, ReadOnlySpan<float> interleaved, int sampleRate, WavSampleFormat format = WavSampleFormat.Pcm16,
        int channels = 1, bool extensible = false)
    {
        var bytes = ToBytes(interleaved, sampleRate, format, channels, extensible);
        File.WriteAllBytes(path, bytes);
    }

    public static byte[] ToBytes(ReadOnlySpan<float> interleaved, int sampleRate, WavSampleFormat format = WavSampleFormat.Pcm16,
        int channels = 1, bool extensible = false)
    {
        if (channels <= 0 || channels > 65535) throw new ArgumentOutOfRangeException(nameof(channels));
        if (sampleRate <= 0) throw new ArgumentOutOfRangeException(nameof(sampleRate));
        if (interleaved.Length % channels != 0) throw new ArgumentException($"{interleaved.Length} samples are not a whole number of {channels}-channel frames");
        var info = new WavInfo(channels, sampleRate, format, 0, interleaved.Length / channels);
        bool isFloat = format is WavSampleFormat.Float32 or WavSampleFormat.Float64;
        int bits = info.BytesPerSample * 8;
        int tag = isFloat ? 3 : 1;
        int fmtSize = extensible ? 40 : isFloat ? 18 : 16;
        long dataBytes = (long)interleaved.Length * info.BytesPerSample;
        long total = 12 + 8 + fmtSize + (isFloat ? 12 : 0) + 8 + dataBytes + (dataBytes & 1);
        if (total > uint.MaxValue) throw new ArgumentException("too much audio for one RIFF WAV file");
        var o = new byte[total];
        var w = o.AsSpan();
        "RIFF"u8.CopyTo(w);
        BinaryPrimitives.WriteUInt32LittleEndian(w[4..], (uint)(total - 8));
        "WAVE"u8.CopyTo(w[8..]);
        int p = 12;
        "fmt "u8.CopyTo(w[p..]);
        BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 4)..], (uint)fmtSize);
        p += 8;
        BinaryPrimitives.WriteUInt16LittleEndian(w[p..], (ushort)(extensible ? 0xFFFE : tag));
        BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 2)..], (ushort)channels);
        BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 4)..], (uint)sampleRate);
        BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 8)..], (uint)(sampleRate * info.BlockAlign));
        BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 12)..], (ushort)info.BlockAlign);
        BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 14)..], (ushort)bits);
        if (fmtSize >= 18) BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 16)..], (ushort)(fmtSize - 18));
        if (extensible)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 18)..], (ushort)bits);
            BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 20)..], channels <= 32 ? (uint)((1L << channels) - 1) : 0);
            BinaryPrimitives.WriteUInt16LittleEndian(w[(p + 24)..], (ushort)tag);
            new byte[] { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71 }.CopyTo(w[(p + 26)..]);
        }
        p += fmtSize;
        if (isFloat)
        {
            "fact"u8.CopyTo(w[p..]);
            BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 4)..], 4);
            BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 8)..], (uint)info.Frames);
            p += 12;
        }
        "data"u8.CopyTo(w[p..]);
        BinaryPrimitives.WriteUInt32LittleEndian(w[(p + 4)..], (uint)dataBytes);
        p += 8;
        foreach (var x in interleaved)
        {
            var d = w[p..];
            switch (format)
            {
                case WavSampleFormat.Pcm8: d[0] = (byte)(Quantize(x, 8) + 128); break;
                case WavSampleFormat.Pcm16: BinaryPrimitives.WriteInt16LittleEndian(d, (short)Quantize(x, 16)); break;
                case WavSampleFormat.Pcm24:
                {
                    int v = (int)Quantize(x, 24);
                    d[0] = (byte)v; d[1] = (byte)(v >> 8); d[2] = (byte)(v >> 16);
                    break;
                }
                case WavSampleFormat.Pcm32: BinaryPrimitives.WriteInt32LittleEndian(d, (int)Quantize(x, 32)); break;
                case WavSampleFormat.Float32: BinaryPrimitives.WriteSingleLittleEndian(d, x); break;
                default: BinaryPrimitives.WriteDoubleLittleEndian(d, x); break;
            }
            p += info.BytesPerSample;
        }
        return o;
    }

    /// <summary>Round to the nearest step of 1/2^(bits-1) and saturate (the reader's exact inverse on the grid).</summary>
    private static long Quantize(float x, int bits)
    {
        double full = Math.Pow(2, bits - 1);
        if (float.IsNaN(x)) return 0;
        double v = Math.Round(x * full, MidpointRounding.ToEven);
        return (long)Math.Clamp(v, -full, full - 1);
    }
}
