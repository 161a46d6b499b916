using HiggsCluster.Training.Collation;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>Collated batches per second on synthetic voice-clone samples (3B token ids, 8 codebooks).</summary>
internal static class CollateBench
{
    private const long AudioIn = 128015, AudioOut = 128016, AudioBos = 128011, AudioEos = 128012, OutBos = 128013, Pad = 128001;

    public static int Run(BenchArgs a)
    {
        int batches = a.Int("batches", 50), batchSize = a.Int("batch", 8);
        var rng = new Random(0);
        var textOnly = Enumerable.Range(0, batchSize).Select(_ => MakeSample(rng, withAudioIn: false)).ToList();
        var withIn = Enumerable.Range(0, batchSize).Select(_ => MakeSample(rng, withAudioIn: true)).ToList();
        var settings = new CollatorModelSettings(EncodeWhisperEmbed: false, EncodeAudioInTokens: true, UseDelayPattern: true,
            AudioNumCodebooks: 8, AudioStreamBosId: 1024, AudioStreamEosId: 1025, AudioInTokenId: AudioIn, AudioOutTokenId: AudioOut, PadTokenId: Pad);
        Console.WriteLine($"collate: batches of {batchSize} samples, {batches} batches per setting");
        foreach (var (key, name, preset, samples) in new[]
                 {
                     ("model_b" + batchSize, "model preset (3B: delay, no whisper), 2 audio-out", CollatorPresets.Model, textOnly),
                     ("model_audioin_b" + batchSize, "model preset (3B), audio-in + 2 audio-out", CollatorPresets.Model, withIn),
                     ("seed_whisper_b" + batchSize, "seed preset (whisper on), audio-in + 2 audio-out", CollatorPresets.Seed, withIn),
                 })
        {
            // the model config is the source of the warnings; the benchmark does not need them
            var options = CollatorPresets.Create(preset, settings) with { MaskAudioOutTokenLabel = false };
            using var collator = new HiggsAudioCollator(options);
            var passes = Timing.Samples(5, () =>
            {
                for (int i = 0; i < batches; i++) collator.Collate(samples).Dispose();
            });
            Console.WriteLine($"{name}: {batches / passes.Min():F1} batches/s (best pass)");
            Console.WriteLine(Stats.Line("collate_" + key, passes.Select(t => batches / t).ToList(), "batches/s"));
        }
        return 0;
    }

    /// <summary>system + user text, optional user audio-in (5 s), reference audio-out, user text, trained target audio-out.</summary>
    private static ChatMLDatasetSample MakeSample(Random rng, bool withAudioIn)
    {
        var ids = new List<long>(); var labels = new List<long>();
        void Text(int n, bool trained) { for (int i = 0; i < n; i++) { long v = rng.Next(1000, 100000); ids.Add(v); labels.Add(trained ? v : -100); } }
        void Tok(long v, bool trained) { ids.Add(v); labels.Add(trained ? v : -100); }
        var audios = new List<int>();
        Text(60, false);
        if (withAudioIn) { Tok(AudioBos, false); Tok(AudioIn, false); Tok(AudioEos, false); audios.Add(125); }
        Tok(OutBos, false); Tok(AudioOut, false); Tok(AudioEos, false); audios.Add(rng.Next(100, 200));
        Text(40, false);
        Tok(OutBos, true); Tok(AudioOut, true); Tok(AudioEos, true); audios.Add(rng.Next(150, 300));
        int total = audios.Sum();
        var codes = new long[8 * total];
        for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(0, 1024);
        var starts = new long[audios.Count];
        for (int i = 1; i < audios.Count; i++) starts[i] = starts[i - 1] + audios[i - 1];
        var wave = withAudioIn ? Enumerable.Range(0, 5 * 16000).Select(i => (float)(0.1 * Math.Sin(i * 0.03))).ToArray() : Array.Empty<float>();
        return new ChatMLDatasetSample
        {
            InputIds = tensor(ids.ToArray()),
            LabelIds = tensor(labels.ToArray()),
            AudioIdsConcat = tensor(codes, new long[] { 8, total }),
            AudioIdsStart = tensor(starts),
            AudioWaveformsConcat = tensor(wave),
            AudioWaveformsStart = withAudioIn ? tensor(new long[] { 0 }) : zeros(0, dtype: ScalarType.Int64),
            AudioSampleRate = withAudioIn ? tensor(new float[] { 16000 }) : zeros(0),
            AudioSpeakerIndices = full(audios.Count, -1L, dtype: ScalarType.Int64),
        };
    }
}
