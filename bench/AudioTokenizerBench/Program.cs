using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;

// Encode speed of the full-size Higgs audio tokenizer (random weights, fp32, CPU) and code-cache warm/cold ratio.
// usage: AudioTokenizerBench [seconds=5] [threads=all] [repeats=3]
HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
if (args.Length > 0 && args[0] == "convs")
{
    // single-layer timings of the DAC encoder's first (widest-in-time) stage, to spot slow conv paths
    torch.set_num_threads(args.Length > 1 ? int.Parse(args[1]) : Environment.ProcessorCount);
    using var noGrad = torch.no_grad();
    var x = randn(1, 64, 24000);
    foreach (var (k, d) in new[] { (7, 1), (7, 3), (7, 9), (1, 1) })
    {
        var w = randn(64, 64, k) * 0.1;
        torch.nn.functional.conv1d(x, w, padding: 3 * d * (k > 1 ? 1 : 0), dilation: d);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++) torch.nn.functional.conv1d(x, w, padding: 3 * d * (k > 1 ? 1 : 0), dilation: d);
        double sec = sw.Elapsed.TotalSeconds / 5;
        Console.WriteLine($"conv1d 64->64 k{k} dilation {d} on 24000 samples: {sec * 1000:F1} ms ({2.0 * 64 * 64 * k * 24000 / sec / 1e9:F1} GFLOP/s)");
    }
    {
        var w = randn(64, 64) * 0.1;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++) w.matmul(x[0]);
        double sec = sw.Elapsed.TotalSeconds / 5;
        Console.WriteLine($"matmul 64x64 by 64x24000: {sec * 1000:F1} ms ({2.0 * 64 * 64 * 24000 / sec / 1e9:F1} GFLOP/s)");
        var w4 = randn(64, 64, 1, 7) * 0.1;
        var x4 = x.unsqueeze(2);
        sw.Restart();
        for (int i = 0; i < 5; i++) torch.nn.functional.conv2d(x4, w4, padding: [0, 3]);
        sec = sw.Elapsed.TotalSeconds / 5;
        Console.WriteLine($"conv2d 64->64 (1,7) on 24000 samples: {sec * 1000:F1} ms ({2.0 * 64 * 64 * 7 * 24000 / sec / 1e9:F1} GFLOP/s)");
    }
    Console.WriteLine($"threads {torch.get_num_threads()}");
    return;
}
double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5;
int threads = args.Length > 1 ? int.Parse(args[1]) : Environment.ProcessorCount;
int repeats = args.Length > 2 ? int.Parse(args[2]) : 3;
torch.set_num_threads(threads);

var sizes = TokenizerSizes.Real;
var build = Stopwatch.StartNew();
HiggsAudioTokenizer tok;
using (var scope = torch.NewDisposeScope())
{
    var sd = TinyTokenizerWriter.RandomStateDict(sizes, seed: 0);
    tok = new HiggsAudioTokenizer(TokenizerCheckpoint.FromStateDict(TinyTokenizerWriter.ConfigFor(sizes), sizes.Hubert, sd, "random full-size weights"));
}
Console.WriteLine($"full-size tokenizer with random weights built in {build.Elapsed.TotalSeconds:F1} s");

int n = (int)(seconds * sizes.SampleRate);
var rng = new Random(1);
var wave = Enumerable.Range(0, n).Select(i => (float)(0.3 * Math.Sin(2 * Math.PI * 220 * i / 24000.0) + 0.05 * (rng.NextDouble() * 2 - 1))).ToArray();

using (var scope = torch.NewDisposeScope()) tok.Encode(wave); // warm-up (allocator, kernels)
var times = new List<double>();
for (int r = 0; r < repeats; r++)
{
    using var scope = torch.NewDisposeScope();
    var sw = Stopwatch.StartNew();
    var codes = tok.Encode(wave);
    times.Add(sw.Elapsed.TotalSeconds);
    if (r == 0) Console.WriteLine($"codes shape [{string.Join(",", codes.shape)}] for {seconds:F1} s of audio");
}
double best = times.Min();
double rtf = seconds / best;
Console.WriteLine($"encode: best {best:F3} s over {repeats} runs ({string.Join(", ", times.Select(t => t.ToString("F3")))})");
Console.WriteLine($"encode speed: {rtf:F2}x real time with {threads} thread(s) = {rtf / threads:F2}x real time per core");

using (var scope = torch.NewDisposeScope())
using (torch.no_grad())
{
    // where the time goes: the two branches of one encode
    var x = tensor(wave).unsqueeze(0);
    var sw = Stopwatch.StartNew();
    var x16 = tok.Resample24kTo16k(x);
    var tRes = sw.Elapsed.TotalSeconds; sw.Restart();
    HubertForward.HiddenStates(tok.Weights, torch.nn.functional.pad(x16, [160, 160]));
    var tHub = sw.Elapsed.TotalSeconds; sw.Restart();
    DacCodec.Encode(tok.Weights, x.unsqueeze(1));
    var tDac = sw.Elapsed.TotalSeconds;
    var plan = tok.PlanFor(n);
    Console.WriteLine($"stages: resample {tRes:F3} s, HuBERT {tHub:F3} s, DAC encoder pass {tDac:F3} s (x{(plan.Repadded ? 2 : 1)} for this length)");
}

var dir = Path.Combine(Path.GetTempPath(), "higgs-bench-cache-" + Guid.NewGuid().ToString("N"));
try
{
    var cache = new CodeCache(dir, tok);
    var bytes = wave.SelectMany(BitConverter.GetBytes).ToArray();
    double cold, warm;
    using (var scope = torch.NewDisposeScope())
    {
        var sw = Stopwatch.StartNew();
        cache.GetOrEncode(bytes, 0, null, () => tok.Encode(wave));
        cold = sw.Elapsed.TotalSeconds;
    }
    var warmTimes = new List<double>();
    for (int r = 0; r < 20; r++)
    {
        using var scope = torch.NewDisposeScope();
        var sw = Stopwatch.StartNew();
        cache.GetOrEncode(bytes, 0, null, () => throw new InvalidOperationException("unexpected miss"));
        warmTimes.Add(sw.Elapsed.TotalSeconds);
    }
    warm = warmTimes.Min();
    Console.WriteLine($"code cache: cold {cold * 1000:F1} ms, warm {warm * 1000:F3} ms, cold/warm {cold / warm:F0}x (hits {cache.Hits}, misses {cache.Misses})");
}
finally
{
    Directory.Delete(dir, true);
}
