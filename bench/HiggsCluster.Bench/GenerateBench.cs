using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench generate`: how fast generation speaks, in seconds of generated audio per wall second (real-time
/// factor; above 1 is faster than real time), at the demo size on the CPU: the demo's tiny random model (LoRA
/// attached), the demo's prompts, the upstream sampler with its defaults, the KV cache, and the audio tokenizer's
/// decode into the WAV. Each round generates until the sampler stops or --seconds of audio; a random model rarely
/// stops early, so the figure is the steady per-column cost.
/// </summary>
internal static class GenerateBench
{
    public static int Run(BenchArgs a)
    {
        int rounds = Math.Max(3, a.Int("rounds", 5)), hidden = a.Int("hidden", 64), layers = a.Int("layers", 2);
        double seconds = a.Int("seconds", 8);
        var root = Path.Combine(Path.GetTempPath(), "higgs-generate-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ws = DemoWorkspace.Create(root, entries: 8, hidden: hidden, layers: layers);
            var o = ws.TrainOptions(Path.Combine(root, "run"), 1);
            o.Progress = "off";
            using var s = TrainingSession.Open(o, TextWriter.Null);
            using var audio = HiggsAudioTokenizer.Load(o.AudioTokenizer);
            var context = SpeechContext.For(s.Model, TextTokenizer.Load(o.TextTokenizer), audio);
            double fps = audio.SampleRate / (double)audio.HopLength;
            Console.WriteLine($"generate bench: demo model (hidden {hidden}, {layers} layers, LoRA r{o.LoraR}), up to {seconds} s of audio per round, {rounds} rounds, {get_num_threads()} threads");
            var rtf = new List<double>(); var perColumn = new List<double>();
            for (int r = 0; r < rounds + 1; r++)
            {
                var prompt = GenerationPrompt.FromEntry(s.Store.Entries[s.TrainIds[r % s.TrainIds.Count]])!;
                var clock = Stopwatch.StartNew();
                var result = context.Generate(prompt, new SamplingOptions { Seed = (ulong)(7 + r), MaxNewTokens = (int)(seconds * fps) + 16 });
                var wave = context.Decode(result.Codes);
                double wall = clock.Elapsed.TotalSeconds;
                if (r == 0) continue; // warm-up
                double said = wave.Length / (double)audio.SampleRate;
                if (result.DelayedColumns.Count > 0) perColumn.Add(wall / result.DelayedColumns.Count * 1000);
                if (said > 0) rtf.Add(said / wall);
                Console.WriteLine($"  round {r}: {result.Frames} frames = {said:0.00} s of audio in {wall:0.00} s, stopped by {result.StopReason}");
            }
            Console.WriteLine(Stats.Line("generate_audio_s_per_wall_s", rtf, "x"));
            Console.WriteLine(Stats.Line("generate_ms_per_column", perColumn, "ms"));
            return 0;
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
