using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Text;
using TorchSharp;
using Xunit;

namespace HiggsCluster.Tests.Data;

/// <summary>Manifest entries through the whole data path, and every kind of bad input reported by entry and field.</summary>
[Trait("Category", "Data")]
public sealed class SampleBuilderTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TextTokenizer _tok;

    public SampleBuilderTests()
    {
        var path = _dir.File("tokenizer.json");
        TinyTextTokenizerWriter.Write(path, new[] { "Say hello to the quiet river.", "Transcribe:" }, merges: 40);
        _tok = TextTokenizer.Load(path);
    }

    public void Dispose() => _dir.Dispose();

    private HiggsAudioTokenizer TinyAudioTokenizer(int seed)
    {
        var dir = Path.Combine(_dir.Path, $"audio_tok_{seed}");
        TinyTokenizerWriter.Write(dir, TinyTokenizerWriter.TinySizes, seed: seed);
        return HiggsAudioTokenizer.Load(dir);
    }

    private static bool Same(torch.Tensor a, torch.Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private string Wav(string name, double seconds, int rate = 22050, int seed = 1)
    {
        var path = _dir.File(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WavWriter.Write(path, SyntheticSpeech.Generate(seconds, rate, seed), rate, WavSampleFormat.Pcm16);
        return path;
    }

    private static string Tts(string audioUrl, string text = "Say hello to the quiet river.", string? labelUrl = null)
    {
        var audio = new JsonObject { ["type"] = "audio", ["audio_url"] = audioUrl };
        if (labelUrl != null) audio["audio_label_url"] = labelUrl;
        return new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = text },
                new JsonObject { ["role"] = "assistant", ["content"] = audio }),
        }.ToJsonString();
    }

    private string Manifest(params string[] lines)
    {
        var path = _dir.File("manifest.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private ValidationReport Validate(string manifest, SampleBuilderOptions? options = null) =>
        DataValidator.Validate(manifest, _tok, options ?? new SampleBuilderOptions());

    [Fact]
    public void Valid_manifest_reports_counts_hours_and_lengths()
    {
        Wav("a.wav", 1.0);
        Wav("sub/b.wav", 2.0, rate: 44100);
        var report = Validate(Manifest(Tts("a.wav"), Tts("sub/b.wav")));
        Assert.True(report.Ok, report.Render());
        Assert.Equal(2, report.ValidEntries);
        Assert.Equal(2, report.AudioSegments);
        // 25 frames per second of audio
        Assert.InRange(report.AudioSeconds, 2.9, 3.1);
        Assert.Equal(2, report.TokenLengths.Count);
        Assert.True(report.TokenLengths[1] > report.TokenLengths[0] + 20, "the 2 s clip adds ~25 more positions");
    }

    [Fact]
    public void Every_bad_entry_is_reported_with_its_index_and_field_and_the_rest_still_counts()
    {
        Wav("ok.wav", 1.0);
        File.WriteAllBytes(_dir.File("corrupt.wav"), "RIFF\x10\0\0\0WAVEjunk"u8.ToArray());
        WavWriter.Write(_dir.File("empty.wav"), Array.Empty<float>(), 16000, WavSampleFormat.Pcm16);
        var manifest = Manifest(
            Tts("ok.wav"),                                                            // 0 fine
            Tts("missing.wav"),                                                       // 1 missing file
            Tts("corrupt.wav"),                                                       // 2 corrupt WAV
            Tts("empty.wav"),                                                         // 3 empty audio
            "{ this is not json",                                                     // 4 bad JSON line
            """{"messages":[{"role":"narrator","content":"hi"}]}""",                  // 5 unknown role
            Tts("ok.wav"));                                                           // 6 fine
        var report = Validate(manifest);
        Assert.False(report.Ok);
        Assert.Equal(7, report.Entries);
        Assert.Equal(2, report.ValidEntries);
        var byEntry = report.Errors.ToDictionary(e => e.EntryIndex);
        Assert.Equal(new long[] { 1, 2, 3, 4, 5 }, byEntry.Keys.Order().ToArray());
        Assert.Contains("messages[1].content", byEntry[1].Field);
        Assert.Contains("not found", byEntry[1].Message);
        Assert.Contains("messages[1].content", byEntry[2].Field);
        Assert.Contains("corrupt.wav", byEntry[2].Message);
        Assert.Contains("empty.wav", byEntry[3].Message);
        Assert.Contains("role", byEntry[5].Field);
        Assert.Contains("narrator", byEntry[5].Message);
        var rendered = report.Render();
        Assert.Contains("entry 4", rendered);
        Assert.Contains("errors: 5", rendered);
    }

    [Fact]
    public void Over_long_samples_are_refused_with_their_length_and_the_limit()
    {
        Wav("long.wav", 4.0);
        var report = Validate(Manifest(Tts("long.wav")), new SampleBuilderOptions { MaxTokens = 64 });
        var e = Assert.Single(report.Errors);
        Assert.Equal(0, e.EntryIndex);
        Assert.Contains("over data.max_tokens (64)", e.Message);
    }

    [Fact]
    public void Paths_outside_the_data_root_are_refused_by_dotdot_and_by_symlink()
    {
        var root = Path.Combine(_dir.Path, "root");
        Directory.CreateDirectory(root);
        var outside = Wav("outside.wav", 1.0);
        File.CreateSymbolicLink(Path.Combine(root, "link.wav"), outside);
        Wav("root/inside.wav", 1.0);
        var manifest = Path.Combine(root, "m.jsonl");
        File.WriteAllLines(manifest, new[] { Tts("../outside.wav"), Tts("link.wav"), Tts("inside.wav") });
        var report = Validate(manifest, new SampleBuilderOptions { DataRoot = root });
        Assert.Equal(2, report.Errors.Count);
        Assert.Contains("outside the data root", report.Errors[0].Message);
        Assert.Contains("symbolic link", report.Errors[1].Message);
        Assert.Equal(1, report.ValidEntries);
    }

    [Fact]
    public void Built_sample_holds_codes_in_order_and_label_audio_replaces_labels()
    {
        using var scope = torch.NewDisposeScope();
        using var audioTok = TinyAudioTokenizer(3);
        Wav("x.wav", 0.8, seed: 5);
        Wav("y.wav", 0.8, seed: 9);
        var builder = new SampleBuilder(_tok, new TokenizerCodeSource(audioTok), new SampleBuilderOptions());
        var items = ManifestReader.Read(Manifest(Tts("x.wav"), Tts("x.wav", labelUrl: "y.wav"))).ToList();

        var plain = builder.Build(0, items[0].Sample!);
        var expected = audioTok.Encode(AudioLoader.LoadAt(_dir.File("x.wav"), 24000).Samples);
        Assert.True(Same(plain.Sample.AudioIdsConcat, expected));
        Assert.Null(plain.Sample.AudioLabelIdsConcat);
        Assert.Equal(plain.Prepared.InputTokens.Length + expected.shape[1] + 2, plain.Positions);

        var labelled = builder.Build(1, items[1].Sample!);
        var labelCodes = audioTok.Encode(AudioLoader.LoadAt(_dir.File("y.wav"), 24000).Samples);
        Assert.True(Same(labelled.Sample.AudioIdsConcat, expected));
        Assert.True(Same(labelled.Sample.AudioLabelIdsConcat!, labelCodes));
    }

    [Fact]
    public void Demo_dataset_validates_and_collates()
    {
        using var scope = torch.NewDisposeScope();
        var data = DemoDataset.Write(Path.Combine(_dir.Path, "demo"), entries: 8);
        var tokPath = _dir.File("demo_tok.json");
        TinyTextTokenizerWriter.Write(tokPath, data.Texts);
        var tok = TextTokenizer.Load(tokPath);
        var report = DataValidator.Validate(data.Manifest, tok, new SampleBuilderOptions { DataRoot = data.Folder });
        Assert.True(report.Ok, report.Render());
        Assert.Equal(8, report.ValidEntries);
        // text round-trips through the tiny tokenizer
        foreach (var t in data.Texts) Assert.Equal(t, tok.Decode(tok.Encode(t)));
    }

    [Fact]
    public void Pre_encoding_fills_the_cache_once_and_reports_bad_entries()
    {
        using var scope = torch.NewDisposeScope();
        using var audioTok = TinyAudioTokenizer(4);
        Wav("p.wav", 0.6, seed: 2);
        Wav("q.wav", 0.6, seed: 3);
        var manifest = Manifest(Tts("p.wav"), Tts("p.wav", labelUrl: "q.wav"), Tts("gone.wav"));
        var cache = new CodeCache(Path.Combine(_dir.Path, "cache"), audioTok);
        var source = new TokenizerCodeSource(audioTok, cache);

        var first = ManifestEncoder.EncodeAll(manifest, source, new SampleBuilderOptions());
        Assert.Equal(3, first.Entries);
        Assert.Equal(2, first.Audios);
        var bad = Assert.Single(first.Errors);
        Assert.Equal(2, bad.EntryIndex);
        Assert.Contains("gone.wav", bad.Message);
        Assert.Equal(2, cache.Misses); // p.wav once (the second use is a hit), q.wav once
        Assert.Equal(1, cache.Hits);

        ManifestEncoder.EncodeAll(manifest, source, new SampleBuilderOptions());
        Assert.Equal(2, cache.Misses);
        Assert.Equal(4, cache.Hits);
    }

    [Fact]
    public void Inline_raw_audio_is_decoded_and_bad_base64_is_reported_by_field()
    {
        var wav = Convert.ToBase64String(WavWriter.ToBytes(SyntheticSpeech.Generate(1.0, 16000, 7), 16000));
        string Inline(string raw) => new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Say hello to the quiet river." },
                new JsonObject { ["role"] = "assistant", ["content"] = new JsonObject { ["type"] = "audio", ["audio_url"] = "", ["raw_audio"] = raw } }),
        }.ToJsonString();
        var report = Validate(Manifest(Inline(wav), Inline("not base64 at all!")));
        Assert.Equal(1, report.ValidEntries);
        Assert.InRange(report.AudioSeconds, 0.9, 1.1);
        var e = Assert.Single(report.Errors);
        Assert.Equal(1, e.EntryIndex);
        Assert.Equal("messages[1].content.raw_audio", e.Field);
    }
}
