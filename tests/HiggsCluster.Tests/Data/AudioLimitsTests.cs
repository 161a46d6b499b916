using System.Diagnostics;
using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Text;
using Xunit;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Data;

/// <summary>
/// Limits before work: one odd audio file is one entry's error (index, field, limit), found from its header or file
/// type before anything decodes or encodes it, and the good entries of the same manifest still build.
/// </summary>
[Trait("Category", "Data"), Trait("Category", "Adversarial")]
public sealed class AudioLimitsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TextTokenizer _tok;

    public AudioLimitsTests()
    {
        var path = _dir.File("tokenizer.json");
        TinyTextTokenizerWriter.Write(path, new[] { "Say hello to the quiet river." }, merges: 40);
        _tok = TextTokenizer.Load(path);
    }

    public void Dispose() => _dir.Dispose();

    private string Wav(string name, double seconds, int rate = 16000)
    {
        var path = _dir.File(name);
        WavWriter.Write(path, SyntheticSpeech.Generate(seconds, rate, 1), rate, WavSampleFormat.Pcm16);
        return path;
    }

    private static string Tts(string audioUrl) => new JsonObject
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = "Say hello to the quiet river." },
            new JsonObject { ["role"] = "assistant", ["content"] = new JsonObject { ["type"] = "audio", ["audio_url"] = audioUrl } }),
    }.ToJsonString();

    /// <summary>A good entry, the bad one, a good entry: the bad one is the only error, the two others are valid.</summary>
    private EntryProblem OnlyTheMiddleEntryFails(string badUrl, SampleBuilderOptions? options = null)
    {
        Wav("ok.wav", 1.0);
        var manifest = _dir.File("manifest.jsonl");
        File.WriteAllLines(manifest, new[] { Tts("ok.wav"), Tts(badUrl), Tts("ok.wav") });
        var report = DataValidator.Validate(manifest, _tok, options ?? new SampleBuilderOptions());
        Assert.Equal(3, report.Entries);
        Assert.Equal(2, report.ValidEntries);
        var e = Assert.Single(report.Errors);
        Assert.Equal(1, e.EntryIndex);
        Assert.Equal("messages[1].content.audio_url", e.Field);
        return e;
    }

    [Fact]
    public void A_tiny_wav_claiming_2000_s_at_1_hz_is_refused_from_its_header()
    {
        // 4 KB: a 16-bit mono header at 1 Hz and 4000 data bytes, i.e. 2000 s that would be 48 M samples at 24 kHz
        File.WriteAllBytes(_dir.File("liar.wav"), WavFileTests.RawWav(1, 1, 1, 16, new byte[4000]));
        var e = OnlyTheMiddleEntryFails("liar.wav");
        Assert.Contains("sample rate 1 Hz is outside the supported 8000..192000 Hz", e.Message);
    }

    [Fact]
    public void Audio_longer_than_max_audio_seconds_is_refused_before_encoding()
    {
        Wav("long.wav", 2.5);
        var e = OnlyTheMiddleEntryFails("long.wav", new SampleBuilderOptions { MaxAudioSeconds = 2 });
        Assert.Contains("2.5 s is longer than data.max_audio_seconds (2)", e.Message);
    }

    [Fact]
    public void The_default_limit_is_60_s_and_a_selected_part_within_it_passes()
    {
        Assert.Equal(60, new SampleBuilderOptions().MaxAudioSeconds);
        Assert.Equal(60, new HiggsCluster.Training.Engine.TrainOptions().MaxAudioSeconds);
        // the limit applies to the part that is used: a 61 s file cut to 5 s is fine
        var path = _dir.File("61s.wav");
        WavWriter.Write(path, new float[61 * 8000], 8000, WavSampleFormat.Pcm8);
        Assert.Equal(5.0, AudioLoader.Probe(path, 10, 5, 60)!.Value.Seconds, 3);
        Assert.Equal(61.0, AudioLoader.Probe(path, null, null, 60)!.Value.Seconds, 3);
    }

    [Fact]
    public void A_96001_hz_wav_is_refused_by_rate_and_the_resampler_says_why_instead_of_overflowing()
    {
        Wav("odd.wav", 0.1, rate: 96001);
        // inside 8..192 kHz, but co-prime with the encoder's 24 kHz: refused from the header, not mid-training
        var e = OnlyTheMiddleEntryFails("odd.wav", new SampleBuilderOptions());
        Assert.Contains("cannot resample 96001 Hz to 24000 Hz", e.Message);
        // were it let through, resampling must fail in words (it threw OverflowException)
        var clip = new AudioClip(new float[9600], 96001);
        var ex = Assert.Throws<ArgumentException>(() => clip.ResampleTo(24000));
        Assert.Contains("cannot resample 96001 Hz to 24000 Hz", ex.Message);
    }

    [Fact]
    public void A_directory_named_like_a_wav_is_not_a_regular_file()
    {
        Directory.CreateDirectory(_dir.File("x.wav"));
        var e = OnlyTheMiddleEntryFails("x.wav");
        Assert.Contains("is not a regular file (a directory)", e.Message);
    }

    [Fact]
    public void Dev_zero_is_refused_as_a_device_without_reading_it()
    {
        if (OperatingSystem.IsWindows() || !File.Exists("/dev/zero")) return;
        // confined by default to the manifest's folder; with a root that holds it, refused as a device
        Assert.Contains("outside the data root", OnlyTheMiddleEntryFails("/dev/zero").Message);
        var e = OnlyTheMiddleEntryFails("/dev/zero", new SampleBuilderOptions { DataRoot = "/" });
        Assert.Contains("/dev/zero: is not a regular file (a device)", e.Message);
    }

    [Fact]
    public void A_fifo_named_wav_is_refused_without_opening_it()
    {
        var fifo = _dir.File("pipe.wav");
        try
        {
            using var p = Process.Start(new ProcessStartInfo("mkfifo", fifo) { UseShellExecute = false })!;
            p.WaitForExit();
            if (p.ExitCode != 0) return;
        }
        catch (System.ComponentModel.Win32Exception) { return; } // no mkfifo here
        // opening it would block until a writer comes, so a hang here is the bug this guards against
        var e = OnlyTheMiddleEntryFails("pipe.wav");
        Assert.Contains("is not a regular file (a pipe)", e.Message);
    }

    [Fact]
    public void The_loader_itself_refuses_non_regular_files()
    {
        Directory.CreateDirectory(_dir.File("d.wav"));
        var e = Assert.Throws<AudioInputException>(() => AudioLoader.Load(_dir.File("d.wav")));
        Assert.Contains("is not a regular file (a directory)", e.Message);
        if (File.Exists("/dev/zero"))
            Assert.Contains("(a device)", Assert.Throws<AudioInputException>(() => AudioLoader.Load("/dev/zero")).Message);
    }

    [Fact]
    public void Max_audio_seconds_is_a_config_key_that_must_be_positive()
    {
        var key = Assert.Single(HiggsCluster.Training.Engine.TrainOptions.Keys, k => k.Name == "data.max_audio_seconds");
        var o = new HiggsCluster.Training.Engine.TrainOptions { Manifest = "m.jsonl", TextTokenizer = "t.json", AudioTokenizer = "a", BaseModelDir = "b", OutputDir = "o" };
        key.Set(o, "0");
        var e = Assert.Throws<HiggsCluster.Planning.TrainConfigException>(() => o.Validate(checkFiles: false));
        Assert.Contains("data.max_audio_seconds", e.Message);
        key.Set(o, "");
        Assert.Null(o.MaxAudioSeconds);
        key.Set(o, "30");
        Assert.Equal(30, o.MaxAudioSeconds);
    }
}
