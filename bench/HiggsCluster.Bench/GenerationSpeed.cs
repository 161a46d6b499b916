using System.Diagnostics;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// Generation speed of a model of any shape, without tokenizers: a voice-clone-shaped prompt (text, a reference
/// audio-out of ~4 s, text, &lt;|audio_out_bos|&gt;) through the KV cache and the upstream sampler with its defaults.
/// Random weights stop at random, so rounds repeat until the asked seconds of audio are generated in all.
/// </summary>
internal static class GenerationSpeed
{
    /// <summary>The 3B tokenizer's ids (tokenizer_config.json's added tokens); the small shapes use the bench's own.</summary>
    public static GenerationTokens Tokens(HiggsAudioConfig cfg, bool released) => released
        ? new GenerationTokens(128013, 128012, new long[] { 128001, 128009 }, cfg.AudioNumCodebooks, cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.UseDelayPattern)
        : new GenerationTokens(12, 11, new long[] { cfg.PadTokenId }, cfg.AudioNumCodebooks, cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.UseDelayPattern);

    /// <summary>(seconds of audio per wall second, milliseconds per generated column, columns) over rounds until <paramref name="seconds"/> are said.</summary>
    public static (double AudioPerWall, double MsPerColumn, int Columns) Measure(HiggsAudioModel model, GenerationTokens tokens, double seconds, double framesPerSecond, int seed = 1)
    {
        var rng = new Random(seed);
        int target = (int)Math.Ceiling(seconds * framesPerSecond), columns = 0, round = 0;
        double wall = 0;
        while (columns < target && round < 50)
        {
            using var scope = NewDisposeScope();
            var prompt = Prompt(model.Config, tokens, rng);
            Sync(model.Device);
            var clock = Stopwatch.StartNew();
            var r = SpeechGenerator.Run(model, prompt, tokens, new SamplingOptions { Seed = (ulong)(seed + round), MaxNewTokens = target - columns + model.Config.AudioNumCodebooks + 2 });
            Sync(model.Device);
            if (round++ == 0) continue; // warm-up: kernels, allocator
            wall += clock.Elapsed.TotalSeconds;
            columns += r.DelayedColumns.Count;
        }
        return (columns / framesPerSecond / Math.Max(1e-9, wall), wall * 1000 / Math.Max(1, columns), columns);
    }

    private static HiggsBatch Prompt(HiggsAudioConfig cfg, GenerationTokens t, Random rng)
    {
        int k = cfg.AudioNumCodebooks, refFrames = 100;
        var ids = new List<long>();
        int maxText = Math.Max(11, Math.Min(7900, cfg.Text.VocabSize / 2));   // plain text ids of any vocabulary (the specials sit at its top)
        for (int i = 0; i < rng.Next(40, 70); i++) ids.Add(rng.Next(10, maxText));
        ids.Add(t.AudioOutBos); ids.Add(cfg.AudioOutTokenIdx); ids.Add(t.AudioEos);
        for (int i = 0; i < rng.Next(20, 40); i++) ids.Add(rng.Next(10, maxText));
        ids.Add(t.AudioOutBos);
        var codes = new long[k * refFrames];
        for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(0, cfg.AudioCodebookSize);
        var sample = new ChatMLDatasetSample
        {
            InputIds = tensor(ids.ToArray()), LabelIds = full(ids.Count, -100L, ScalarType.Int64),
            AudioIdsConcat = tensor(codes, new long[] { k, refFrames }), AudioIdsStart = tensor(new long[] { 0 }),
            AudioWaveformsConcat = zeros(0), AudioWaveformsStart = zeros(0, dtype: ScalarType.Int64), AudioSampleRate = zeros(0),
            AudioSpeakerIndices = full(1, -1L, dtype: ScalarType.Int64),
        };
        var settings = new CollatorModelSettings(false, cfg.EncodeAudioInTokens, cfg.UseDelayPattern, k, cfg.AudioStreamBosId, cfg.AudioStreamEosId,
            cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx, cfg.PadTokenId);
        using var collator = new HiggsAudioCollator(CollatorPresets.Create(CollatorPresets.Model, settings) with { RoundTo = 1, ReturnAudioInTokens = false });
        return collator.Collate(new[] { sample });
    }

    private static void Sync(Device d)
    {
        if (d.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(d);
    }
}
