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
            var cache = new CodeCache(Path.Combine(dir, "cache"), audioTok);
            var builder = new SampleBuilder(text, new TokenizerCodeSource(audioTok, cache), new SampleBuilderOptions());
            var items = ManifestReader.Read(data.Manifest).ToList();

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

            var sw = Stopwatch.StartNew();
            var samples = BuildAll();
            double cold = sw.Elapsed.TotalSeconds;
            sw.Restart();
            BuildAll();
            double warm = sw.Elapsed.TotalSeconds;
            Console.WriteLine($"data path on the example data: {entries} entries, {data.AudioSeconds:F1} s of audio (tiny audio tokenizer)");
            Console.WriteLine($"  cold cache: {entries / cold:F1} samples/s, {data.AudioSeconds / cold:F1} s of audio/s");
            Console.WriteLine($"  warm cache: {entries / warm:F1} samples/s, {data.AudioSeconds / warm:F1} s of audio/s (warm/cold speed-up {cold / warm:F1}x)");

            var special = HiggsSpecialTokens.From(text);
            int bins = audioTok.Sizes.Bins;
            var settings = new CollatorModelSettings(false, true, true, audioTok.Sizes.NQ, bins, bins + 1, special.Audio, special.AudioOut, special.EndOfText);
            using var collator = new HiggsAudioCollator(CollatorPresets.Create(CollatorPresets.Model, settings));
            var batches = samples.Chunk(batchSize).ToList();
            double t = Timing.Best(3, () =>
            {
                foreach (var b in batches)
                {
                    using var scope = torch.NewDisposeScope();
                    collator.Collate(b).Dispose();
                }
            });
            Console.WriteLine($"  collate ({CollatorPresets.Model} preset, batches of {batchSize}): {batches.Count / t:F1} batches/s");
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
