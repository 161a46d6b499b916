using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench generate`: how fast generation speaks at the demo size on the CPU, in seconds of generated audio per
/// wall second (above 1 is faster than real time): the demo's tiny model with its LoRA attached, the KV cache and the
/// upstream sampler with its defaults (<see cref="GenerationSpeed"/>), then the audio tokenizer's decode of the codes
/// into the waveform. Random weights stop at random, so rounds repeat until the asked seconds are said.
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
            var special = HiggsSpecialTokens.From(TextTokenizer.Load(o.TextTokenizer));
            var cfg = s.Model.Config;
            var tokens = new GenerationTokens(special.AudioOutBos, special.AudioEos, new long[] { special.EndOfText, special.EotId }, cfg.AudioNumCodebooks,
                cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.UseDelayPattern);
            double fps = audio.SampleRate / (double)audio.HopLength;
            Console.WriteLine($"generate bench: demo model (hidden {hidden}, {layers} layers, LoRA r{o.LoraR}), {seconds} s of audio per round, {rounds} rounds, {get_num_threads()} threads");
            var model = new List<double>(); var perColumn = new List<double>(); var decode = new List<double>(); var overall = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                var (rtf, ms, columns) = GenerationSpeed.Measure(s.Model, tokens, seconds, fps, seed: 11 + r);
                // the decode of as many frames as were said, timed alone
                int frames = Math.Max(1, columns);
                var codes = randint(0, cfg.AudioCodebookSize, new long[] { cfg.AudioNumCodebooks, frames }, dtype: ScalarType.Int64);
                var clock = Stopwatch.StartNew();
                using (var wave = audio.Decode(codes)) { }
                double decodeS = clock.Elapsed.TotalSeconds;
                double said = frames / fps;
                double rtfDecode = said / decodeS;
                model.Add(rtf); perColumn.Add(ms); decode.Add(rtfDecode);
                overall.Add(said / (said / rtf + decodeS));
                Console.WriteLine($"  round {r + 1}: {columns} columns, model + sampler {rtf:0.0}x real time ({ms:0.0} ms per column), decode {rtfDecode:0.0}x");
            }
            Console.WriteLine(Stats.Line("generate_audio_s_per_wall_s", overall, "x"));
            Console.WriteLine(Stats.Line("generate_model_audio_s_per_wall_s", model, "x"));
            Console.WriteLine(Stats.Line("generate_ms_per_column", perColumn, "ms"));
            Console.WriteLine(Stats.Line("generate_decode_audio_s_per_wall_s", decode, "x"));
            return 0;
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
