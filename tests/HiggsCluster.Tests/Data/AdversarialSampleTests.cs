using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Text;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Data;

/// <summary>
/// One odd audio costs one entry, found before any encoding: the sequence length is estimated from the header,
/// non-finite samples are refused, paths stay under the manifest's folder when no data root is set, an unexpected
/// failure of the encoder is that entry's error, and no byte of a refused file reaches a message.
/// </summary>
[Trait("Category", "Adversarial")]
public sealed class AdversarialSampleTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TextTokenizer _tok;

    public AdversarialSampleTests()
    {
        var path = _dir.File("tokenizer.json");
        TinyTextTokenizerWriter.Write(path, new[] { "Say hello to the quiet river." }, merges: 40);
        _tok = TextTokenizer.Load(path);
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>Codes of 25 frames a second, counting every call; <paramref name="fail"/> makes one file's encoding throw.</summary>
    private sealed class CountingCodes(Func<AudioRef, Exception?>? fail = null) : IAudioCodeSource
    {
        public int Calls;
        public int SampleRate => 24000;
        public int NumCodebooks => 8;

        public Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate)
        {
            Calls++;
            if (fail?.Invoke(audio) is { } e) throw e;
            var clip = loadAtRate();
            return zeros(NumCodebooks, Math.Max(1, clip.Samples.Length / 960), dtype: ScalarType.Int64);
        }
    }

    private string Wav(string name, double seconds, int rate = 16000)
    {
        var path = _dir.File(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WavWriter.Write(path, SyntheticSpeech.Generate(seconds, rate, 1), rate, WavSampleFormat.Pcm16);
        return path;
    }

    private static string Tts(string audioUrl) => new JsonObject
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = "Say hello to the quiet river." },
            new JsonObject { ["role"] = "assistant", ["content"] = new JsonObject { ["type"] = "audio", ["audio_url"] = audioUrl } }),
    }.ToJsonString();

    private ChatMLSample Sample(string audioUrl) => ChatMLEntryParser.ParseOrThrow(System.Text.Json.JsonDocument.Parse(Tts(audioUrl)).RootElement, 0, _dir.Path);

    /// <summary>ok.wav, the bad url, ok.wav through data validate: only entry 1 fails, at its audio field.</summary>
    private EntryProblem OnlyEntryOneFails(string badUrl, SampleBuilderOptions? options = null, IAudioCodeSource? codes = null)
    {
        Wav("ok.wav", 1.0);
        var manifest = _dir.File("manifest.jsonl");
        File.WriteAllLines(manifest, new[] { Tts("ok.wav"), Tts(badUrl), Tts("ok.wav") });
        var report = DataValidator.Validate(manifest, _tok, options ?? new SampleBuilderOptions(), codes);
        Assert.Equal(3, report.Entries);
        Assert.Equal(2, report.ValidEntries);
        var e = Assert.Single(report.Errors);
        Assert.Equal(1, e.EntryIndex);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    private static byte[] FloatWav(int rate, params float[] samples)
    {
        var data = new byte[samples.Length * 4];
        for (int i = 0; i < samples.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), samples[i]);
        return WavFileTests.RawWav(3, 1, rate, 32, data);
    }

    [Fact]
    public void The_sequence_length_is_estimated_from_the_header_and_refused_before_any_encoding()
    {
        Wav("long.wav", 4.0);
        var codes = new CountingCodes();
        var builder = new SampleBuilder(_tok, codes, new SampleBuilderOptions { MaxTokens = 64 });
        var e = Assert.Throws<SampleException>(() => builder.Build(0, Sample("long.wav")));
        Assert.Equal(0, codes.Calls);
        Assert.Equal("messages", e.Field);
        Assert.Contains("over data.max_tokens (64); refused before encoding", e.Reason);
        Assert.Contains("at least 1", e.Reason); // 4 s at 25 frames a second: over 100 positions
    }

    [Fact]
    public void The_estimate_counts_the_delay_columns_of_every_audio()
    {
        Wav("one.wav", 1.0);
        var fits = new SampleBuilder(_tok, new CountingCodes(), new SampleBuilderOptions()).Build(0, Sample("one.wav"));
        // one codebook short of the delay pattern's columns: refused with 7 columns (8 codebooks), accepted without
        var limit = fits.Positions + 3;
        var codes = new CountingCodes();
        var delayed = new SampleBuilder(_tok, codes, new SampleBuilderOptions { MaxTokens = limit, DelayColumns = 7 });
        var e = Assert.Throws<SampleException>(() => delayed.Build(0, Sample("one.wav")));
        Assert.Contains("7 delay columns per audio", e.Reason);
        Assert.Equal(0, codes.Calls);
        Assert.Equal(fits.Positions, new SampleBuilder(_tok, new CountingCodes(), new SampleBuilderOptions { MaxTokens = limit }).Build(0, Sample("one.wav")).Positions);
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "infinite")]
    public void A_float_wav_with_non_finite_samples_is_reported_by_validate_naming_the_sample(float bad, string word)
    {
        var samples = Enumerable.Range(0, 16000).Select(i => MathF.Sin(i * 0.05f) * 0.3f).ToArray();
        samples[8000] = bad;
        File.WriteAllBytes(_dir.File("bad.wav"), FloatWav(16000, samples));
        var e = OnlyEntryOneFails("bad.wav");
        Assert.Equal("messages[1].content", e.Field);
        Assert.Contains($"sample 8000 (at 0.500 s) is {word}", e.Message);
    }

    [Fact]
    public void Training_refuses_a_clip_with_a_NaN_sample_before_encoding_it()
    {
        var samples = new float[24000];
        samples[5] = float.NaN;
        File.WriteAllBytes(_dir.File("nan.wav"), FloatWav(24000, samples));
        var codes = new CountingCodes();
        var builder = new SampleBuilder(_tok, codes, new SampleBuilderOptions());
        var e = Assert.Throws<SampleException>(() => builder.Build(3, Sample("nan.wav")));
        Assert.Equal(3, e.EntryIndex);
        Assert.Contains("is NaN", e.Reason);
    }

    [Fact]
    public void Without_a_data_root_an_absolute_path_outside_the_manifest_folder_is_refused()
    {
        using var elsewhere = new TempDir();
        var outside = elsewhere.File("secret.wav");
        WavWriter.Write(outside, SyntheticSpeech.Generate(1.0, 16000, 1), 16000, WavSampleFormat.Pcm16);
        var e = OnlyEntryOneFails(outside);
        Assert.Equal("messages[1].content.audio_url", e.Field);
        Assert.Contains("is outside the data root", e.Message);
        Assert.Contains(_dir.Path, e.Message);
        // and through a '..' that leaves the manifest's folder
        Assert.Contains("outside the data root", OnlyEntryOneFails(Path.Combine("..", Path.GetFileName(elsewhere.Path), "secret.wav")).Message);
    }

    [Fact]
    public void A_refused_file_is_never_quoted_in_the_message()
    {
        File.WriteAllText(_dir.File("notes.wav"), "PASSWORD=hunter2 and more private text, long enough for a header");
        var e = OnlyEntryOneFails("notes.wav");
        Assert.Contains("not a RIFF/WAVE file", e.Message);
        Assert.DoesNotContain("PASS", e.Message);
        Assert.DoesNotContain("hunt", e.Message);
    }

    [Fact]
    public void An_unexpected_native_error_while_encoding_one_file_is_that_entrys_error_in_one_line()
    {
        Wav("crash.wav", 1.0);
        var codes = new CountingCodes(a => a.Path!.EndsWith("crash.wav") ? new ExternalException("Exception raised from toFloat at c10/core/Scalar.h:140\n frame #0: c10::Error") : null);
        var e = OnlyEntryOneFails("crash.wav", codes: codes);
        Assert.Equal("messages[1].content", e.Field);
        Assert.Contains("ExternalException: Exception raised from toFloat", e.Message);
        Assert.Equal(3, codes.Calls);
    }

    [Theory]
    [InlineData("overflow")]
    [InlineData("access")]
    [InlineData("io")]
    public void Any_per_entry_exception_of_the_encoder_is_caught_and_the_others_still_build(string kind)
    {
        Wav("bad.wav", 1.0);
        Exception Make() => kind switch
        {
            "overflow" => new OverflowException("Arithmetic operation resulted in an overflow."),
            "access" => new UnauthorizedAccessException("Access to the path is denied."),
            _ => new EndOfStreamException("the file ended"),
        };
        var codes = new CountingCodes(a => a.Path!.EndsWith("bad.wav") ? Make() : null);
        var e = OnlyEntryOneFails("bad.wav", codes: codes);
        Assert.Contains(Make().Message, e.Message);
    }

    [Fact]
    public void A_directory_as_audio_url_is_refused_before_it_is_opened_on_the_training_path_too()
    {
        Directory.CreateDirectory(_dir.File("clips.wav"));
        var codes = new CountingCodes();
        var e = Assert.Throws<SampleException>(() => new SampleBuilder(_tok, codes, new SampleBuilderOptions()).Build(7, Sample("clips.wav")));
        Assert.Equal(7, e.EntryIndex);
        Assert.Contains("is not a regular file (a directory)", e.Reason);
        Assert.Equal(0, codes.Calls);
    }
}
