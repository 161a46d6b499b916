using System.Buffers.Binary;
using FFMpegCore;
using HiggsCluster.Training.Audio;
using Xunit;

namespace HiggsCluster.Tests.Audio;

[Trait("Category", "Audio")]
public sealed class BadAudioInputTests
{
    private static AudioInputException Refused(string path, string expectedFragment, double? offset = null, double? duration = null)
    {
        var e = Assert.Throws<AudioInputException>(() => AudioLoader.Load(path, offset, duration));
        Assert.Contains(path, e.Message);
        Assert.Contains(expectedFragment, e.Message);
        return e;
    }

    private static byte[] Pcm16(int frames) => new byte[2 * frames];

    [Fact]
    public void Missing_file()
    {
        using var dir = new TempDir();
        Refused(dir.File("nope.wav"), "file not found");
        Refused(dir.File("nope.flac"), "file not found");
    }

    [Fact]
    public void Corrupt_or_truncated_headers()
    {
        using var dir = new TempDir();
        var good = WavFileTests.RawWav(1, 1, 16000, 16, Pcm16(100));

        File.WriteAllBytes(dir.File("garbage.wav"), "this is not audio at all"u8.ToArray());
        Refused(dir.File("garbage.wav"), "not a RIFF/WAVE file");

        File.WriteAllBytes(dir.File("tiny.wav"), good[..7]);
        Refused(dir.File("tiny.wav"), "truncated WAV header");

        File.WriteAllBytes(dir.File("cutfmt.wav"), good[..28]);    // ends inside the fmt chunk
        Refused(dir.File("cutfmt.wav"), "truncated WAV header");

        var avi = (byte[])good.Clone();
        "AVI "u8.CopyTo(avi.AsSpan(8));
        File.WriteAllBytes(dir.File("avi.wav"), avi);
        Refused(dir.File("avi.wav"), "not a RIFF/WAVE file");

        var smallFmt = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(smallFmt.AsSpan(16), 12);
        File.WriteAllBytes(dir.File("smallfmt.wav"), smallFmt);
        Refused(dir.File("smallfmt.wav"), "'fmt ' chunk has 12 bytes");

        File.WriteAllBytes(dir.File("align.wav"), WavFileTests.RawWav(1, 2, 16000, 16, Pcm16(100), blockAlign: 2));
        Refused(dir.File("align.wav"), "block align 2 does not match 2 channel(s)");

        File.WriteAllBytes(dir.File("nochan.wav"), WavFileTests.RawWav(1, 0, 16000, 16, Pcm16(100), blockAlign: 0));
        Refused(dir.File("nochan.wav"), "0 channels");

        File.WriteAllBytes(dir.File("nodata.wav"), good[..36]);    // RIFF + fmt, no data chunk
        Refused(dir.File("nodata.wav"), "no data chunk");

        var dataFirst = new byte[good.Length];
        Array.Copy(good, dataFirst, 12);
        Array.Copy(good, 36, dataFirst, 12, good.Length - 36);     // data chunk ...
        Array.Copy(good, 12, dataFirst, 12 + good.Length - 36, 24);  // ... then fmt
        File.WriteAllBytes(dir.File("datafirst.wav"), dataFirst);
        Refused(dir.File("datafirst.wav"), "data chunk comes before the fmt chunk");
    }

    [Fact]
    public void Unsupported_wav_encodings()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("alaw.wav"), WavFileTests.RawWav(6, 1, 8000, 8, new byte[100]));
        Refused(dir.File("alaw.wav"), "unsupported WAV encoding: format tag 0x0006 (A-law)");
        File.WriteAllBytes(dir.File("pcm12.wav"), WavFileTests.RawWav(1, 1, 8000, 12, new byte[100], blockAlign: 1));
        Refused(dir.File("pcm12.wav"), "integer PCM with 12 bits");
        File.WriteAllBytes(dir.File("half.wav"), WavFileTests.RawWav(3, 1, 8000, 16, new byte[100]));
        Refused(dir.File("half.wav"), "IEEE float with 16 bits");
    }

    [Fact]
    public void Empty_audio_and_offsets_past_the_end()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("empty.wav"), WavFileTests.RawWav(1, 1, 16000, 16, Array.Empty<byte>()));
        Refused(dir.File("empty.wav"), "empty (0 samples)");

        WavWriter.Write(dir.File("one.wav"), new float[16000], 16000);
        Refused(dir.File("one.wav"), "beyond the end", offset: 1.0);
        Refused(dir.File("one.wav"), "beyond the end", offset: 5.0, duration: 1);
        Refused(dir.File("one.wav"), "shorter than one sample", duration: 1e-6);

        var e = Assert.Throws<AudioInputException>(() => AudioLoader.LoadBytes(Array.Empty<byte>(), "raw_audio of sample 2"));
        Assert.Contains("raw_audio of sample 2", e.Message);
        var b = Assert.Throws<AudioInputException>(() => AudioLoader.LoadBase64("***not base64***", "raw_audio of sample 3"));
        Assert.Contains("raw_audio of sample 3: raw_audio is not valid base64", b.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void Duration_must_be_positive(double duration)
    {
        using var dir = new TempDir();
        WavWriter.Write(dir.File("a.wav"), new float[1600], 16000);
        Refused(dir.File("a.wav"), "duration must be a finite number of seconds > 0", duration: duration);
    }

    [Fact]
    public void Offset_must_not_be_negative()
    {
        using var dir = new TempDir();
        WavWriter.Write(dir.File("a.wav"), new float[1600], 16000);
        Refused(dir.File("a.wav"), "offset must be a finite number of seconds >= 0", offset: -0.5);
    }

    [Fact]
    public void Non_wav_without_ffmpeg_names_the_file_and_the_fix()
    {
        using var dir = new TempDir();
        var path = dir.File("speech.flac");
        File.WriteAllBytes(path, "fLaC"u8.ToArray());
        var noFfmpeg = new FFOptions { BinaryFolder = dir.Path };   // a folder without an ffmpeg binary
        var e = Assert.Throws<AudioInputException>(() => FfmpegDecoder.Decode(path, path, options: noFfmpeg));
        Assert.Contains(path, e.Message);
        Assert.Contains("needs ffmpeg, which is not installed", e.Message);
        Assert.Contains("apt-get install ffmpeg", e.Message);
    }
}
