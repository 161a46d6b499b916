using System.Diagnostics;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench train [--steps 500] [--hidden 64] [--layers 2] [--batch 4] [--entries 16]`: step time and tokens/s of the
/// training engine on a tiny demo model (CPU), and RSS sampled along the run (it should stay flat). Audio codes come
/// from a deterministic pattern source so the numbers are the engine's, not the audio tokenizer's.
/// </summary>
internal static class TrainBench
{
    private sealed class PatternCodes(int k, int bins) : IAudioCodeSource
    {
        public int SampleRate => 24000;
        public int NumCodebooks => k;
        public Tensor Codes(AudioRef audio, Func<AudioClip> load)
        {
            var clip = load();
            int frames = Math.Max(2, (int)(clip.DurationSeconds * 25));
            return arange(k * frames, ScalarType.Int64).reshape(k, frames).remainder(bins);
        }
    }

    public static int Run(BenchArgs a)
    {
        int steps = a.Int("steps", 500), hidden = a.Int("hidden", 64), layers = a.Int("layers", 2), batch = a.Int("batch", 4), entries = a.Int("entries", 16);
        var root = Path.Combine(Path.GetTempPath(), "higgs-train-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ws = DemoWorkspace.Create(root, entries, hidden: hidden, layers: layers);
            var o = ws.TrainOptions(Path.Combine(root, "run"), steps);
            o.BatchSize = batch; o.ValidationFraction = 0; o.Progress = "off"; o.Plots = false; o.TensorBoard = false; o.ValSteps = 0; o.SaveSteps = 0;
            using var s = TrainingSession.Open(o, TextWriter.Null, new PatternCodes(8, Training.AudioTokenizer.TinyTokenizerWriter.TinySizes.Bins));
            Console.WriteLine($"train bench: hidden {hidden}, {layers} layers, batch {batch}, {s.TrainIds.Count} samples, {steps} steps, {get_num_threads()} threads");
            var times = new List<double>(); long tokens = 0;
            var rss = new List<(int Step, long Bytes)>();
            for (int step = 0; step < steps; step++)
            {
                var clock = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                {
                    var g = s.Engine.ComputeGradients(s.Plan.MicroBatches(step).Select(ids => s.Store.Collate(ids)).ToList(), step);
                    s.Engine.ApplyGradients(g, step);
                    tokens += g.Positions;
                }
                times.Add(clock.Elapsed.TotalSeconds);
                if (step % 50 == 0 || step == steps - 1) rss.Add((step, DryRun.Rss("VmRSS")));
            }
            var sorted = times.Skip(5).OrderBy(x => x).ToList();
            double median = sorted.Count > 0 ? sorted[sorted.Count / 2] : times[^1];
            Console.WriteLine($"step time: median {median * 1000:0.0} ms, mean {times.Skip(5).DefaultIfEmpty(times[^1]).Average() * 1000:0.0} ms; tokens/s {tokens / times.Sum():0}");
            var timed = times.Skip(5).DefaultIfEmpty(times[^1]).ToList();
            double audioPerSample = ws.Data.AudioSeconds / entries;
            Console.WriteLine(Stats.Line("train_step_s", timed, "s"));
            Console.WriteLine(Stats.Line("train_samples_per_s", timed.Select(t => batch / t).ToList(), "samples/s"));
            Console.WriteLine(Stats.Line("train_audio_s_per_s", timed.Select(t => batch * audioPerSample / t).ToList(), "s/s"));
            Console.WriteLine("RSS (MiB) by step: " + string.Join("  ", rss.Select(r => $"{r.Step}:{r.Bytes / 1048576.0:0}")));
            if (rss.Count >= 3)
                Console.WriteLine($"RSS change from step {rss[1].Step} to {rss[^1].Step}: {(rss[^1].Bytes - rss[1].Bytes) / 1048576.0:+0.0;-0.0} MiB");
            return 0;
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
