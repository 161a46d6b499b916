using HiggsCluster.Tests.Model;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Generation;

/// <summary>
/// The KV-cached steps must give the logits of the training forward recomputed on the whole sequence, for every
/// layer kind (dual-FFN, fast-forward, plain), with LoRA attached (dropout on, model left in train mode).
/// </summary>
[Trait("Category", "Generate")]
public sealed class KvCacheTests
{
    private const double Tol = 1e-4;
    private const long AudioBosText = 97, AudioEosText = 96;

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var kind in new[] { "dual", "fastforward", "stack", "dualplain" })
            foreach (var prompt in new[] { "text", "voice", "padded" }) d.Add(kind, prompt);
        return d;
    }

    private static HiggsAudioConfig Config(string kind) => kind switch
    {
        // Every layer dual-FFN, as in the released model.
        "dual" => TinyModels.V2Like(layers: 2),
        // Only layer 1 dual-FFN: layers 0 and 2 are fast-forward; the audio-out projector is on.
        "fastforward" => TinyModels.V2Like(layers: 3) with { DualFfnLayers = new[] { 1 }, UseAudioOutEmbedProjector = true },
        "stack" => TinyModels.V2Like(layers: 2) with { AdapterType = AudioAdapterType.Stack, DualFfnLayers = Array.Empty<int>(), AudioEmbedAvg = true },
        "dualplain" => TinyModels.V2Like(layers: 2) with { AdapterType = AudioAdapterType.DualFfn, DualFfnLayers = new[] { 0 } },
        _ => throw new ArgumentException(kind),
    };

    private static DecoderLayerKind[] ExpectedKinds(string kind) => kind switch
    {
        "dual" => new[] { DecoderLayerKind.DualFfn, DecoderLayerKind.DualFfn },
        "fastforward" => new[] { DecoderLayerKind.FastForward, DecoderLayerKind.DualFfn, DecoderLayerKind.FastForward },
        "stack" => new[] { DecoderLayerKind.Plain, DecoderLayerKind.Plain },
        _ => new[] { DecoderLayerKind.DualFfn, DecoderLayerKind.Plain },
    };

    /// <summary>Random model with LoRA on every projection, A and B random so the adapter changes the output.</summary>
    private static HiggsAudioModel ModelWithLora(HiggsAudioConfig cfg, long seed, ScalarType dtype = ScalarType.Float32)
    {
        var m = new HiggsAudioModel(cfg, dtype, CPU);
        ModelWeights.RandomInit(m, seed);
        var adapter = LoraAdapter.Attach(m, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.5 });
        var g = new Generator((ulong)seed + 100);
        using (no_grad())
            foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape, generator: g) * 0.2);
        // Dropout 0.5 in train mode would make every call differ: generation must switch it off by itself.
        m.train();
        return m;
    }

    private static Tensor Codes(HiggsAudioConfig cfg, int n, int salt)
    {
        int k = cfg.AudioNumCodebooks;
        var flat = new long[k * n];
        for (int c = 0; c < k; c++) for (int j = 0; j < n; j++) flat[c * n + j] = (j * 3 + c + salt) % cfg.CodebookVocab;
        return tensor(flat).view(k, n);
    }

    /// <summary>text: plain text. voice: text, an audio-in reference (codes), text, then audio-out columns. padded: left padding in the attention mask.</summary>
    private static HiggsBatch Prompt(HiggsAudioConfig cfg, string kind)
    {
        long ain = cfg.AudioInTokenIdx, aout = cfg.AudioOutTokenIdx, pad = cfg.PadTokenId;
        switch (kind)
        {
            case "text":
                return new HiggsBatch { InputIds = tensor(new long[] { 90, 5, 6, 7, 8 }).view(1, 5), AttentionMask = ones(1, 5, ScalarType.Int64) };
            case "padded":
                return new HiggsBatch
                {
                    InputIds = tensor(new long[] { pad, pad, pad, 90, 5, 6, 7 }).view(1, 7),
                    AttentionMask = tensor(new long[] { 0, 0, 0, 1, 1, 1, 1 }).view(1, 7),
                };
            default:
                var ids = new long[] { 90, 5, ain, 6, 7, AudioBosText, aout };
                return new HiggsBatch
                {
                    InputIds = tensor(ids).view(1, ids.Length), AttentionMask = ones(1, ids.Length, ScalarType.Int64),
                    AudioInIds = Codes(cfg, 6, 1), AudioInIdsStart = tensor(new long[] { 0 }),
                    AudioOutIds = Codes(cfg, 3, 2), AudioOutIdsStart = tensor(new long[] { 0 }),
                };
        }
    }

    /// <summary>A step: a text token, or (when Column is set) one audio-out column.</summary>
    private sealed record Step(long Token, long[]? Column);

    private static List<Step> Script(HiggsAudioConfig cfg)
    {
        int k = cfg.AudioNumCodebooks;
        long[] Col(int j) => Enumerable.Range(0, k).Select(c => j == 0 ? (long)cfg.AudioStreamBosId : (j * 5 + c) % cfg.AudioCodebookSize).ToArray();
        var s = new List<Step> { new(11, null), new(12, null), new(AudioBosText, null) };
        for (int j = 0; j < 5; j++) s.Add(new(0, Col(j)));
        s.Add(new(AudioEosText, null)); s.Add(new(13, null));
        for (int j = 0; j < 2; j++) s.Add(new(0, Col(j + 7)));
        s.Add(new(14, null));
        return s;
    }

    private static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    private static void AssertClose(StepLogits cached, StepLogits full, double tol, string where)
    {
        Assert.Equal(full.Text.shape, cached.Text.shape);
        Assert.Equal(full.Audio.shape, cached.Audio.shape);
        double dt = MaxDiff(cached.Text, full.Text), da = MaxDiff(cached.Audio, full.Audio);
        Assert.True(dt < tol && da < tol, $"{where}: text diff {dt:E2}, audio diff {da:E2}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Cached_steps_give_the_logits_of_recomputing_the_whole_sequence(string kind, string promptKind)
    {
        using var scope = NewDisposeScope();
        var cfg = Config(kind);
        var model = ModelWithLora(cfg, seed: 3);
        Assert.Equal(ExpectedKinds(kind), model.Layers.Select(l => l.Kind).ToArray());
        var prompt = Prompt(cfg, promptKind);
        var transcript = new StepTranscript(cfg, prompt);
        using var cache = new KvCache(model);

        var first = model.Prefill(prompt, cache);
        Assert.False(model.training);
        Assert.Equal(new long[] { cfg.Text.VocabSize }, first.Text.shape);
        Assert.Equal(new long[] { cfg.AudioNumCodebooks, cfg.CodebookVocab }, first.Audio.shape);
        Assert.Equal(ScalarType.Float32, first.Text.dtype);
        AssertClose(first, model.Recompute(transcript.ToBatch()), Tol, "prefill");

        int i = 0;
        foreach (var step in Script(cfg))
        {
            StepLogits cached;
            if (step.Column is { } col) { cached = model.DecodeAudio(col, cache); transcript.AddAudio(col); }
            else { cached = model.DecodeText(step.Token, cache); transcript.AddText(step.Token); }
            using var whole = transcript.ToBatch();
            AssertClose(cached, model.Recompute(whole), Tol, $"step {i++} ({(step.Column is null ? $"text {step.Token}" : "audio")})");
        }
        long promptPositions = prompt.AttentionMask.sum().item<long>()
            + (promptKind == "voice" ? 6 + 3 - 2 : 0);   // each audio placeholder becomes its columns
        Assert.Equal(promptPositions + Script(cfg).Count, cache.NextPosition);
    }

    [Fact]
    public void Fast_forward_layers_hide_cached_audio_from_text_and_skip_audio_steps()
    {
        using var scope = NewDisposeScope();
        var cfg = Config("fastforward");
        var model = ModelWithLora(cfg, seed: 5);
        using var cache = new KvCache(model);
        var prompt = Prompt(cfg, "voice");
        model.Prefill(prompt, cache);
        // Audio-in codes and audio-out columns of the prompt are marked as codes, the text is not.
        Assert.Equal(6 + 3, cache.AudioCodes.Count(c => c));
        model.DecodeAudio(Enumerable.Repeat(1L, cfg.AudioNumCodebooks).ToArray(), cache);
        Assert.True(cache.AudioCodes[^1]);
        Assert.All(Enumerable.Range(0, cache.NumLayers), i => Assert.Equal(cache.Length, cache.Layer(i).Length));
    }

    [Theory]
    [InlineData("dual")]
    [InlineData("fastforward")]
    public void Greedy_decoding_with_the_cache_picks_the_same_tokens_as_recomputation(string kind)
    {
        using var scope = NewDisposeScope();
        var cfg = Config(kind);
        var model = ModelWithLora(cfg, seed: 11);
        var prompt = Prompt(cfg, "voice");

        // Text steps first and last, audio steps in between; placeholders are never chosen as text.
        bool AudioStep(int i) => i >= 3 && i < 8;
        object Pick(StepLogits l, int i)
        {
            if (AudioStep(i)) return l.Audio.argmax(-1).data<long>().ToArray();
            var t = l.Text.clone();
            t[cfg.AudioInTokenIdx] = float.NegativeInfinity; t[cfg.AudioOutTokenIdx] = float.NegativeInfinity;
            return t.argmax().item<long>();
        }
        List<string> Run(Func<object, StepLogits> apply, StepLogits first)
        {
            var picks = new List<string>();
            var last = first;
            for (int i = 0; i < 10; i++)
            {
                var p = Pick(last, i);
                picks.Add(p is long[] c ? string.Join(",", c) : p.ToString()!);
                last = apply(p);
            }
            return picks;
        }

        using var cache = new KvCache(model);
        var cached = Run(p => p is long[] c ? model.DecodeAudio(c, cache) : model.DecodeText((long)p, cache), model.Prefill(prompt, cache));

        var transcript = new StepTranscript(cfg, prompt);
        var recomputed = Run(p =>
        {
            if (p is long[] c) transcript.AddAudio(c); else transcript.AddText((long)p);
            using var whole = transcript.ToBatch();
            return model.Recompute(whole);
        }, model.Recompute(transcript.ToBatch()));

        Assert.Equal(recomputed, cached);
        Assert.Contains(cached, p => p.Contains(','));
    }

    [Fact]
    public void Lora_dropout_is_off_so_repeated_generation_is_deterministic()
    {
        using var scope = NewDisposeScope();
        var cfg = Config("dual");
        var model = ModelWithLora(cfg, seed: 7);
        var prompt = Prompt(cfg, "text");
        StepLogits Once()
        {
            model.train();
            using var cache = new KvCache(model);
            model.Prefill(prompt, cache);
            return model.DecodeText(9, cache);
        }
        var a = Once();
        var b = Once();
        Assert.Equal(0, MaxDiff(a.Text, b.Text));
    }

    [Fact]
    public void Misuse_is_refused_with_clear_errors()
    {
        using var scope = NewDisposeScope();
        var cfg = Config("dual");
        var model = ModelWithLora(cfg, seed: 2);
        using var cache = new KvCache(model);
        var two = new HiggsBatch { InputIds = tensor(new long[] { 90, 5, 90, 6 }).view(2, 2), AttentionMask = ones(2, 2, ScalarType.Int64) };
        Assert.Throws<ArgumentException>(() => model.Prefill(two, cache));
        model.Prefill(Prompt(cfg, "text"), cache);
        Assert.Throws<ArgumentException>(() => model.Prefill(Prompt(cfg, "text"), cache));
        Assert.Throws<ArgumentException>(() => model.DecodeText(cfg.AudioOutTokenIdx, cache));
        Assert.Throws<ArgumentException>(() => model.DecodeAudio(new long[] { 1, 2 }, cache));
        Assert.Throws<InvalidDataException>(() => model.DecodeAudio(Enumerable.Repeat((long)cfg.CodebookVocab, cfg.AudioNumCodebooks).ToArray(), cache));

        var other = TinyModels.Random(TinyModels.V2Like(layers: 3));
        Assert.Throws<ArgumentException>(() => model.DecodeText(5, new KvCache(other)));

        var selfAttn = TinyModels.Random(cfg with { UseAudioOutSelfAttention = true });
        using var c2 = new KvCache(selfAttn);
        Assert.Throws<NotSupportedException>(() => selfAttn.Prefill(Prompt(cfg, "text"), c2));
    }

    [Fact]
    public void Bf16_model_on_cpu_stays_close_to_recomputation()
    {
        using var scope = NewDisposeScope();
        var cfg = Config("fastforward");
        var model = ModelWithLora(cfg, seed: 13, dtype: ScalarType.BFloat16);
        var prompt = Prompt(cfg, "voice");
        var transcript = new StepTranscript(cfg, prompt);
        using var cache = new KvCache(model);
        model.Prefill(prompt, cache);
        foreach (var step in Script(cfg).Take(8))
        {
            StepLogits cached;
            if (step.Column is { } col) { cached = model.DecodeAudio(col, cache); transcript.AddAudio(col); }
            else { cached = model.DecodeText(step.Token, cache); transcript.AddText(step.Token); }
            using var whole = transcript.ToBatch();
            var full = model.Recompute(whole);
            // bf16 rounds differently when rows are computed one at a time; the scale of the logits bounds the gap.
            double scale = Math.Max(full.Text.abs().max().item<float>(), full.Audio.abs().max().item<float>());
            AssertClose(cached, full, 0.05 * scale + 0.02, "bf16");
        }
    }
}
