using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;

// Encode speed of the full-size Higgs audio tokenizer (random weights, fp32, CPU) and code-cache warm/cold ratio.
// usage: AudioTokenizerBench [seconds=5] [threads=all] [repeats=3]
HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
if (args.Length > 0 && args[0] == "convs")
{
    // every conv shape of an encode, libtorch conv1d vs im2col + sgemm: convs [seconds=2] [threads=1] [reps=5]
    torch.set_num_threads(args.Length > 2 ? int.Parse(args[2]) : 1);
    HiggsCluster.Bench.AudioTokenizer.ConvProbe.Run(args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2,
        args.Length > 3 ? int.Parse(args[3]) : 5);
    return;
}
if (args.Length > 0 && args[0] == "profile")
{
    // per-op timings of one encode: profile [seconds=2] [threads=1] [passes=3]
    double secs = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2;
    torch.set_num_threads(args.Length > 2 ? int.Parse(args[2]) : 1);
    int passes = args.Length > 3 ? int.Parse(args[3]) : 3;
    var sz = TokenizerSizes.Real;
    HiggsAudioTokenizer t;
    using (var scope = torch.NewDisposeScope())
        t = new HiggsAudioTokenizer(TokenizerCheckpoint.FromStateDict(TinyTokenizerWriter.ConfigFor(sz), sz.Hubert,
            TinyTokenizerWriter.RandomStateDict(sz, seed: 0), "random full-size weights"));
    var rnd = new Random(1);
    var wv = Enumerable.Range(0, (int)(secs * sz.SampleRate)).Select(i => (float)(0.3 * Math.Sin(2 * Math.PI * 220 * i / 24000.0) + 0.05 * (rnd.NextDouble() * 2 - 1))).ToArray();
    HiggsCluster.Bench.AudioTokenizer.LayerProfile.Run(t, wv, passes);
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
var faults = new List<long>();
var cpuTimes = new List<double>();
for (int r = 0; r < repeats; r++)
{
    using var scope = torch.NewDisposeScope();
    long f0 = MinorFaults();
    double c0 = HiggsCluster.Bench.AudioTokenizer.ThreadClock.Seconds();
    var sw = Stopwatch.StartNew();
    var codes = tok.Encode(wave);
    times.Add(sw.Elapsed.TotalSeconds);
    cpuTimes.Add(HiggsCluster.Bench.AudioTokenizer.ThreadClock.Seconds() - c0);
    faults.Add(MinorFaults() - f0);
    if (r == 0) Console.WriteLine($"codes shape [{string.Join(",", codes.shape)}] for {seconds:F1} s of audio");
}
double best = times.Min();
double rtf = seconds / best;
Console.WriteLine($"encode: best {best:F3} s over {repeats} runs ({string.Join(", ", times.Select(t => t.ToString("F3")))})");
Console.WriteLine($"minor page faults per encode: {string.Join(", ", faults)}");
Console.WriteLine($"thread cpu time per encode: best {cpuTimes.Min():F3} s ({string.Join(", ", cpuTimes.Select(t => t.ToString("F3")))}); wall/cpu of the best run {best / cpuTimes[times.IndexOf(best)]:F2} (> 1: the thread waited for a core)");
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

// first-touch page faults are what fresh (mmap-backed) tensor memory costs; read from /proc/self/stat (field 10)
static long MinorFaults()
{
    var stat = File.ReadAllText("/proc/self/stat");
    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    return long.Parse(fields[7]);
}
