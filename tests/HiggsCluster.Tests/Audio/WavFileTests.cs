using System.Buffers.Binary;
using HiggsCluster.Training.Audio;
using Xunit;

namespace HiggsCluster.Tests.Audio;

[Trait("Category", "Audio")]
public sealed class WavFileTests
{
    private static float[] Tone(int n, double cyclesPerSample, double amp) =>
        Enumerable.Range(0, n).Select(i => (float)(amp * Math.Sin(2 * Math.PI * cyclesPerSample * i))).ToArray();

    /// <summary>A minimal RIFF/WAVE file from parts, written here byte by byte (independent of WavWriter).</summary>
    internal static byte[] RawWav(int tag, int channels, int rate, int bits, byte[] data, int? blockAlign = null, uint? dataSize = null)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write("RIFF"u8); w.Write(0u); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16u);
        w.Write((ushort)tag); w.Write((ushort)channels); w.Write((uint)rate);
        int align = blockAlign ?? channels * bits / 8;
        w.Write((uint)(rate * align)); w.Write((ushort)align); w.Write((ushort)bits);
        w.Write("data"u8); w.Write(dataSize ?? (uint)data.Length); w.Write(data);
        w.Flush();
        var bytes = ms.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)(bytes.Length - 8));
        return bytes;
    }

    [Theory]
    [InlineData(WavSampleFormat.Pcm8, 8)]
    [InlineData(WavSampleFormat.Pcm16, 16)]
    [InlineData(WavSampleFormat.Pcm24, 24)]
    [InlineData(WavSampleFormat.Pcm32, 32)]
    public void Integer_pcm_round_trips_to_the_nearest_step(WavSampleFormat format, int bits)
    {
        using var dir = new TempDir();
        var x = Tone(4000, 0.01237, 0.9);
        var path = dir.File("pcm.wav");
        WavWriter.Write(path, x, 22050, format);
        var clip = AudioLoader.Load(path);
        Assert.Equal(22050, clip.SampleRate);
        Assert.Equal(x.Length, clip.Samples.Length);
        double step = Math.Pow(2, -(bits - 1));
        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(Math.Abs(clip.Samples[i] - x[i]) <= step / 2 + 1e-7, $"sample {i}: {clip.Samples[i]} vs {x[i]}");
            // values land on the 1/2^(bits-1) grid (librosa/libsndfile scaling)
            double k = clip.Samples[i] / step;
            if (bits <= 24) Assert.Equal(Math.Round(k), k);
        }
    }

    [Theory]
    [InlineData(WavSampleFormat.Float32, false)]
    [InlineData(WavSampleFormat.Float64, false)]
    [InlineData(WavSampleFormat.Float32, true)]
    [InlineData(WavSampleFormat.Pcm16, true)]
    public void Float_and_extensible_files_round_trip(WavSampleFormat format, bool extensible)
    {
        using var dir = new TempDir();
        var x = Tone(3001, 0.0417, 0.7);
        var path = dir.File("f.wav");
        WavWriter.Write(path, x, 48000, format, 1, extensible);
        var info = WavReader.ReadInfo(File.OpenRead(path), path);
        Assert.Equal(format, info.Format);
        var y = AudioLoader.Load(path).Samples;
        if (format == WavSampleFormat.Pcm16)
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(y[i] - x[i]) <= 1.0 / 65536 + 1e-7);
        else Assert.Equal(x, y);
    }

    [Fact]
    public void Integer_scaling_matches_libsndfile()
    {
        using var dir = new TempDir();
        // 16-bit: -32768 -> -1, 16384 -> 0.5, 32767 -> 32767/32768
        var d16 = new byte[6];
        BinaryPrimitives.WriteInt16LittleEndian(d16, short.MinValue);
        BinaryPrimitives.WriteInt16LittleEndian(d16.AsSpan(2), 16384);
        BinaryPrimitives.WriteInt16LittleEndian(d16.AsSpan(4), short.MaxValue);
        File.WriteAllBytes(dir.File("a.wav"), RawWav(1, 1, 8000, 16, d16));
        Assert.Equal(new[] { -1f, 0.5f, 32767f / 32768f }, AudioLoader.Load(dir.File("a.wav")).Samples);
        // 8-bit is unsigned around 128
        File.WriteAllBytes(dir.File("b.wav"), RawWav(1, 1, 8000, 8, new byte[] { 0, 128, 255, 64 }));
        Assert.Equal(new[] { -1f, 0f, 127f / 128f, -0.5f }, AudioLoader.Load(dir.File("b.wav")).Samples);
        // 24-bit little-endian two's complement: 0x800000 -> -1, 0x400000 -> 0.5, 0xFFFFFF -> -1/2^23
        File.WriteAllBytes(dir.File("c.wav"), RawWav(1, 1, 8000, 24, new byte[] { 0, 0, 0x80, 0, 0, 0x40, 0xFF, 0xFF, 0xFF }));
        Assert.Equal(new[] { -1f, 0.5f, -1f / 8388608f }, AudioLoader.Load(dir.File("c.wav")).Samples);
        // 32-bit int: int.MinValue -> -1, 2^30 -> 0.5
        var d32 = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(d32, int.MinValue);
        BinaryPrimitives.WriteInt32LittleEndian(d32.AsSpan(4), 1 << 30);
        File.WriteAllBytes(dir.File("d.wav"), RawWav(1, 1, 8000, 32, d32));
        Assert.Equal(new[] { -1f, 0.5f }, AudioLoader.Load(dir.File("d.wav")).Samples);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Multichannel_is_downmixed_by_the_mean(int channels)
    {
        using var dir = new TempDir();
        int n = 2000;
        var chans = Enumerable.Range(0, channels).Select(c => Tone(n, 0.01 * (c + 1), 0.3 + 0.1 * c)).ToArray();
        var interleaved = new float[n * channels];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < channels; c++) interleaved[i * channels + c] = chans[c][i];
        var path = dir.File("multi.wav");
        WavWriter.Write(path, interleaved, 16000, WavSampleFormat.Float32, channels);
        var y = AudioLoader.Load(path).Samples;
        Assert.Equal(n, y.Length);
        for (int i = 0; i < n; i++)
        {
            // np.mean(y, axis=0) on float32 channels: float32 running sum, float32 divide
            float sum = 0;
            for (int c = 0; c < channels; c++) sum += chans[c][i];
            Assert.Equal(sum / channels, y[i]);
            Assert.True(Math.Abs(y[i] - chans.Sum(ch => (double)ch[i]) / channels) <= 1e-7);
        }
    }

    [Fact]
    public void Offset_and_duration_select_frames_like_librosa()
    {
        using var dir = new TempDir();
        var ramp = Enumerable.Range(0, 16000).Select(i => (float)i).ToArray();  // float32 holds the index exactly
        var path = dir.File("ramp.wav");
        WavWriter.Write(path, ramp, 16000, WavSampleFormat.Float32);

        var a = AudioLoader.Load(path, offset: 0.25, duration: 0.5).Samples;
        Assert.Equal(8000, a.Length);
        Assert.Equal(4000f, a[0]);
        Assert.Equal(11999f, a[^1]);

        // int(offset * sr) truncates: 0.10004 s * 16000 = 1600.64 -> 1600; duration 0.00009 s -> 1 frame
        var b = AudioLoader.Load(path, offset: 0.10004, duration: 0.00009).Samples;
        Assert.Equal(new[] { 1600f }, b);

        // a duration past the end is cut at the end
        var c = AudioLoader.Load(path, offset: 0.9, duration: 10).Samples;
        Assert.Equal(1600, c.Length);
        Assert.Equal(15999f, c[^1]);

        Assert.Equal(16000, AudioLoader.Load(path, offset: 0).Samples.Length);
    }

    [Fact]
    public void Truncated_data_uses_the_frames_present_and_streamed_size_reads_to_the_end()
    {
        using var dir = new TempDir();
        var data = new byte[200];                      // 100 frames of 16-bit mono
        for (int i = 0; i < 100; i++) BinaryPrimitives.WriteInt16LittleEndian(data.AsSpan(2 * i), (short)(i * 100));
        File.WriteAllBytes(dir.File("short.wav"), RawWav(1, 1, 8000, 16, data, dataSize: 2000));
        Assert.Equal(100, AudioLoader.Load(dir.File("short.wav")).Samples.Length);
        File.WriteAllBytes(dir.File("stream.wav"), RawWav(1, 1, 8000, 16, data.Append((byte)7).ToArray(), dataSize: 0xFFFFFFFF));
        var s = AudioLoader.Load(dir.File("stream.wav")).Samples;
        Assert.Equal(100, s.Length);                   // the odd trailing byte is not a frame
        Assert.Equal(9900f / 32768f, s[^1]);
    }

    [Fact]
    public void Bytes_and_base64_inputs_decode_like_the_file()
    {
        var x = Tone(1234, 0.02, 0.5);
        var bytes = WavWriter.ToBytes(x, 24000, WavSampleFormat.Float32);
        Assert.Equal(x, AudioLoader.LoadBytes(bytes, "clip").Samples);
        var clip = AudioLoader.LoadBase64(Convert.ToBase64String(bytes), "raw_audio of sample 4", offset: 0.01);
        Assert.Equal(x.Skip(240).ToArray(), clip.Samples);
        Assert.Equal(24000, clip.SampleRate);
    }

    [Fact]
    public void LoadAt_resamples_with_the_high_quality_preset()
    {
        using var dir = new TempDir();
        var x = Tone(44100, 1000.0 / 44100, 0.5);
        var path = dir.File("t.wav");
        WavWriter.Write(path, x, 44100, WavSampleFormat.Float32);
        var clip = AudioLoader.LoadAt(path, 24000);
        Assert.Equal(24000, clip.SampleRate);
        Assert.Equal(Resampler.Resample(x, 44100, 24000, ResamplerPreset.HighQuality), clip.Samples);
    }
    [Fact]
    public void Rf64_and_padded_unknown_chunks_are_read()
    {
        using var dir = new TempDir();
        var pcm = new byte[8];
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteInt16LittleEndian(pcm.AsSpan(2 * i), (short)(1000 * (i + 1)));

        // RF64: sizes live in the ds64 chunk, the 32-bit fields hold 0xFFFFFFFF
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write("RF64"u8); w.Write(0xFFFFFFFFu); w.Write("WAVE"u8);
        w.Write("ds64"u8); w.Write(28u); w.Write(0UL); w.Write((ulong)6); w.Write(3UL); w.Write(0u);  // data: 6 of the 8 bytes
        w.Write("fmt "u8); w.Write(16u); w.Write((ushort)1); w.Write((ushort)1); w.Write(8000u); w.Write(16000u); w.Write((ushort)2); w.Write((ushort)16);
        w.Write("data"u8); w.Write(0xFFFFFFFFu); w.Write(pcm);
        w.Flush();
        File.WriteAllBytes(dir.File("big.wav"), ms.ToArray());
        Assert.Equal(new[] { 1000f / 32768, 2000f / 32768, 3000f / 32768 }, AudioLoader.Load(dir.File("big.wav")).Samples);

        // an odd-sized LIST chunk before data is followed by one pad byte
        ms = new MemoryStream();
        w = new BinaryWriter(ms);
        w.Write("RIFF"u8); w.Write(0u); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16u); w.Write((ushort)1); w.Write((ushort)1); w.Write(8000u); w.Write(16000u); w.Write((ushort)2); w.Write((ushort)16);
        w.Write("LIST"u8); w.Write(5u); w.Write("INFOx"u8); w.Write((byte)0);
        w.Write("data"u8); w.Write(8u); w.Write(pcm);
        w.Flush();
        File.WriteAllBytes(dir.File("list.wav"), ms.ToArray());
        Assert.Equal(new[] { 1000f / 32768, 2000f / 32768, 3000f / 32768, 4000f / 32768 }, AudioLoader.Load(dir.File("list.wav")).Samples);
    }
}
