using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Text;
using TorchSharp;

namespace HiggsCluster.Bench;

/// <summary>
/// The data path on the demo's example data: manifest entries → samples with a cold code cache (audio encoded by
/// the tiny tokenizer) and a warm one (codes read back), then collated batches per second on those samples.
/// </summary>
internal static class DataPathBench
{
    public static int Run(BenchArgs a)
    {
        int entries = a.Int("entries", 24), batchSize = a.Int("batch", 4);
        var dir = Path.Combine(Path.GetTempPath(), "higgs-bench-data-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ws = DemoWorkspace.Create(dir, entries);
            var data = ws.Data;
            var text = TextTokenizer.Load(ws.TextTokenizer);
            using var audioTok = HiggsAudioTokenizer.Load(ws.AudioTokenizer);
            var items = ManifestReader.Read(data.Manifest).ToList();
            int passes = Math.Max(5, a.Int("repeat", 5));

            // Every cold pass gets an empty cache directory, so every audio is encoded again.
            SampleBuilder NewBuilder(int pass) =>
                new(text, new TokenizerCodeSource(audioTok, new CodeCache(Path.Combine(dir, "cache" + pass), audioTok)), new SampleBuilderOptions());
            var builder = NewBuilder(0);

            List<ChatMLDatasetSample> BuildAll()
            {
                var list = new List<ChatMLDatasetSample>();
                foreach (var item in items)
                {
                    var built = builder.Build(item.Index, item.Sample!);
                    list.Add(built.Sample);
                }
                return list;
            }

            var coldT = new List<double>();
            List<ChatMLDatasetSample> samples = null!;
            for (int p = 0; p < passes; p++)
            {
                builder = NewBuilder(p);
                var sw = Stopwatch.StartNew();
                samples = BuildAll();
                coldT.Add(sw.Elapsed.TotalSeconds);
            }
            var warmT = Timing.Samples(passes, () => BuildAll());
            double cold = Stats.Median(coldT), warm = Stats.Median(warmT);
            Console.WriteLine($"data path on the example data: {entries} entries, {data.AudioSeconds:F1} s of audio (tiny audio tokenizer)");
            Console.WriteLine($"  cold cache: {entries / cold:F1} samples/s, {data.AudioSeconds / cold:F1} s of audio/s");
            Console.WriteLine($"  warm cache: {entries / warm:F1} samples/s, {data.AudioSeconds / warm:F1} s of audio/s (warm/cold speed-up {cold / warm:F1}x)");
            Console.WriteLine(Stats.Line("data_cold_samples_per_s", coldT.Select(t => entries / t).ToList(), "samples/s"));
            Console.WriteLine(Stats.Line("data_cold_audio_s_per_s", coldT.Select(t => data.AudioSeconds / t).ToList(), "s/s"));
            Console.WriteLine(Stats.Line("data_warm_samples_per_s", warmT.Select(t => entries / t).ToList(), "samples/s"));
            Console.WriteLine(Stats.Line("data_warm_audio_s_per_s", warmT.Select(t => data.AudioSeconds / t).ToList(), "s/s"));

            var special = HiggsSpecialTokens.From(text);
            int bins = audioTok.Sizes.Bins;
            var settings = new CollatorModelSettings(false, true, true, audioTok.Sizes.NQ, bins, bins + 1, special.Audio, special.AudioOut, special.EndOfText);
            using var collator = new HiggsAudioCollator(CollatorPresets.Create(CollatorPresets.Model, settings));
            var batches = samples.Chunk(batchSize).ToList();
            var collT = Timing.Samples(passes, () =>
            {
                foreach (var b in batches)
                {
                    using var scope = torch.NewDisposeScope();
                    collator.Collate(b).Dispose();
                }
            });
            Console.WriteLine($"  collate ({CollatorPresets.Model} preset, batches of {batchSize}): {batches.Count / Stats.Median(collT):F1} batches/s");
            Console.WriteLine(Stats.Line($"data_collate_b{batchSize}_batches_per_s", collT.Select(t => batches.Count / t).ToList(), "batches/s"));
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
