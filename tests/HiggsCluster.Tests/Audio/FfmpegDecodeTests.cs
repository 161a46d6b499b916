using System.Diagnostics;
using HiggsCluster.Training.Audio;
using Xunit;

namespace HiggsCluster.Tests.Audio;

/// <summary>
/// Non-WAV input through ffmpeg. Skipped (with the reason) when ffmpeg is not on PATH, except under CI=true,
/// where CI installs ffmpeg and a missing binary must fail.
/// </summary>
[Trait("Category", "Audio")]
public sealed class FfmpegDecodeTests
{
    private static void RequireFfmpeg()
    {
        if (FfmpegDecoder.IsAvailable) return;
        if (Environment.GetEnvironmentVariable("CI") == "true")
            Assert.Fail("ffmpeg is not on PATH but CI=true: the CI script must install it (apt-get install ffmpeg)");
        Assert.Skip("ffmpeg is not on PATH (apt-get install ffmpeg); the FFmpeg decoding path is not tested here");
    }

    /// <summary>Encodes a WAV we wrote ourselves with the ffmpeg command line.</summary>
    private static void Encode(string input, string output, string codecArgs)
    {
        var psi = new ProcessStartInfo(FfmpegDecoder.Find()!)
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-hide_banner", "-loglevel", "error", "-y", "-i", input }) psi.ArgumentList.Add(a);
        foreach (var a in codecArgs.Split(' ')) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(output);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"ffmpeg failed to encode the test file: {err}");
    }

    private static float[] StereoSpeech(int frames, int rate)
    {
        var left = SyntheticSpeech.Generate((double)frames / rate, rate, seed: 11);
        var right = SyntheticSpeech.Generate((double)frames / rate, rate, seed: 12);
        var x = new float[2 * frames];
        for (int i = 0; i < frames; i++) { x[2 * i] = left[i]; x[2 * i + 1] = right[i]; }
        return x;
    }

    [Fact]
    public void Flac_decodes_to_the_same_samples_as_the_wav_it_was_made_from()
    {
        RequireFfmpeg();
        using var dir = new TempDir();
        var wav = dir.File("src.wav");
        var flac = dir.File("clip.flac");
        WavWriter.Write(wav, StereoSpeech(22050, 22050), 22050, WavSampleFormat.Pcm16, channels: 2);
        Encode(wav, flac, "-c:a flac");

        var fromWav = AudioLoader.Load(wav);
        var fromFlac = AudioLoader.Load(flac);
        Assert.Equal(22050, fromFlac.SampleRate);
        Assert.Equal(fromWav.Samples, fromFlac.Samples);          // FLAC is lossless, the down-mix is ours in both

        var cutWav = AudioLoader.Load(wav, offset: 0.2, duration: 0.3);
        var cutFlac = AudioLoader.Load(flac, offset: 0.2, duration: 0.3);
        Assert.Equal(6615, cutFlac.Samples.Length);
        Assert.Equal(cutWav.Samples, cutFlac.Samples);

        var raw = AudioLoader.LoadBase64(Convert.ToBase64String(File.ReadAllBytes(flac)), "raw_audio of sample 0", offset: 0.5);
        Assert.Equal(fromWav.Samples.Skip(11025).ToArray(), raw.Samples);

        var at16k = AudioLoader.LoadAt(flac, 16000);
        Assert.Equal(16000, at16k.SampleRate);
        Assert.Equal(Resampler.Resample(fromWav.Samples, 22050, 16000), at16k.Samples);
    }

    [Fact]
    public void Lossy_formats_decode_at_their_native_rate()
    {
        RequireFfmpeg();
        using var dir = new TempDir();
        var wav = dir.File("src.wav");
        WavWriter.Write(wav, SyntheticSpeech.Generate(1.0, 32000, seed: 5), 32000, WavSampleFormat.Float32);
        var ogg = dir.File("clip.ogg");
        Encode(wav, ogg, "-c:a libvorbis -q:a 4");
        var clip = AudioLoader.Load(ogg);
        Assert.Equal(32000, clip.SampleRate);
        Assert.InRange(clip.Samples.Length, 31000, 33000);
        Assert.True(clip.Samples.Max(Math.Abs) > 0.1);
    }

    [Fact]
    public void Undecodable_files_and_empty_offsets_name_the_file()
    {
        RequireFfmpeg();
        using var dir = new TempDir();
        var bad = dir.File("broken.mp3");
        File.WriteAllBytes(bad, Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray());
        var e = Assert.Throws<AudioInputException>(() => AudioLoader.Load(bad));
        Assert.Contains(bad, e.Message);
        Assert.Contains("ffmpeg", e.Message);

        var wav = dir.File("src.wav");
        var flac = dir.File("short.flac");
        WavWriter.Write(wav, new float[8000], 16000);
        Encode(wav, flac, "-c:a flac");
        var past = Assert.Throws<AudioInputException>(() => AudioLoader.Load(flac, offset: 2.0));
        Assert.Contains(flac, past.Message);
        Assert.Contains("beyond the end", past.Message);
    }
}
