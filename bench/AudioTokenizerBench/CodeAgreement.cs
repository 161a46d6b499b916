using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Goldens;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Bench.AudioTokenizer;

/// <summary>
/// Codes of the full-size model with the fast CPU conv paths against plain libtorch conv1d/linear, under the goldens'
/// near-tie rule (a code may differ only from a position whose reference margin is below 1e-4 onwards).
/// </summary>
public static class CodeAgreement
{
    public static void Run(HiggsAudioTokenizer tok, double[] seconds)
    {
        int clip = 0, failed = 0;
        foreach (var s in seconds)
        {
            using var scope = torch.NewDisposeScope();
            var rng = new Random(100 + clip++);
            double f0 = 80 + 400 * rng.NextDouble();
            var wave = Enumerable.Range(0, (int)(s * tok.SampleRate))
                .Select(i => (float)(0.3 * Math.Sin(2 * Math.PI * f0 * i / tok.SampleRate * (1 + 0.3 * i / (s * tok.SampleRate))) + 0.1 * (rng.NextDouble() * 2 - 1)))
                .ToArray();
            var x = tensor(wave).unsqueeze(0);
            CpuConv.LibtorchDefaults = true;
            using var reference = tok.EncodeBatch(x, intermediates: false);
            CpuConv.LibtorchDefaults = false;
            using var fast = tok.EncodeBatch(x, intermediates: false);
            long differ = fast.Codes.ne(reference.Codes).sum().item<long>();
            double latentDiff = (fast.PrequantLatent - reference.PrequantLatent).abs().max().item<float>();
            var o = new GoldenOutputs();
            AudioTokenizerGoldenArea.CheckCodes(o, fast.Codes[0], reference.Codes[0], reference.CodeMargin[0], 1e-4);
            failed += o.Failures.Count > 0 ? 1 : 0;
            Console.WriteLine($"{s:F2} s: {reference.Codes.shape[2]} frames, codes differing {differ} of {reference.Codes.NumberOfElements}, " +
                $"smallest margin {reference.CodeMargin.min().item<float>():E2}, max |prequant latent diff| {latentDiff:E2}, near-tie rule: {(o.Failures.Count == 0 ? "pass" : string.Join("; ", o.Failures))}");
        }
        Console.WriteLine($"{seconds.Length - failed} of {seconds.Length} clips agree under the near-tie rule");
    }
}
