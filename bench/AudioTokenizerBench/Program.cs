using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;

// Encode speed of the full-size Higgs audio tokenizer (random weights, fp32, CPU) and code-cache warm/cold ratio.
// usage: AudioTokenizerBench [seconds=5] [threads=1] [repeats=3] [libtorch: plain conv1d/linear]; modes: convs, profile, agree (see bench/README.md)
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
    // per-op timings of one encode: profile [seconds=2] [threads=1] [passes=3] [libtorch: plain conv1d/linear]
    double secs = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2;
    torch.set_num_threads(args.Length > 2 ? int.Parse(args[2]) : 1);
    int passes = args.Length > 3 ? int.Parse(args[3]) : 3;
    var sz = TokenizerSizes.Real;
    HiggsAudioTokenizer t;
    using (var scope = torch.NewDisposeScope())
        t = new HiggsAudioTokenizer(TokenizerWeights.FromStateDict(TinyTokenizerWriter.ConfigFor(sz), sz.Hubert,
            TinyTokenizerWriter.RandomStateDict(sz, seed: 0), "random full-size weights"));
    var rnd = new Random(1);
    var wv = Enumerable.Range(0, (int)(secs * sz.SampleRate)).Select(i => (float)(0.3 * Math.Sin(2 * Math.PI * 220 * i / 24000.0) + 0.05 * (rnd.NextDouble() * 2 - 1))).ToArray();
    HiggsCluster.Bench.AudioTokenizer.LayerProfile.Run(t, wv, passes, args.Length > 4 && args[4] == "libtorch");
    return;
}
if (args.Length > 0 && args[0] == "agree")
{
    // codes of the fast CPU conv paths vs plain libtorch ones on the full-size random model: agree [threads=1]
    torch.set_num_threads(args.Length > 1 ? int.Parse(args[1]) : 1);
    var sz = TokenizerSizes.Real;
    using var t = new HiggsAudioTokenizer(TokenizerWeights.FromStateDict(TinyTokenizerWriter.ConfigFor(sz), sz.Hubert,
        TinyTokenizerWriter.RandomStateDict(sz, seed: 0), "random full-size weights"));
    HiggsCluster.Bench.AudioTokenizer.CodeAgreement.Run(t, [0.7, 1.0, 2.0, 2.37, 3.3, 4.71, 6.1, 9.5]);
    return;
}
double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5;
int threads = args.Length > 1 ? int.Parse(args[1]) : 1; // the target is per core, on one libtorch thread
int repeats = args.Length > 2 ? int.Parse(args[2]) : 3;
torch.set_num_threads(threads);
HiggsCluster.Training.TorchRuntime.KeepFreedHostMemory(); // as 'higgs data encode' does
CpuConv.LibtorchDefaults = args.Length > 3 && args[3] == "libtorch"; // the baseline the CpuConv paths are measured against

var sizes = TokenizerSizes.Real;
var build = Stopwatch.StartNew();
HiggsAudioTokenizer tok;
using (var scope = torch.NewDisposeScope())
{
    var sd = TinyTokenizerWriter.RandomStateDict(sizes, seed: 0);
    tok = new HiggsAudioTokenizer(TokenizerWeights.FromStateDict(TinyTokenizerWriter.ConfigFor(sizes), sizes.Hubert, sd, "random full-size weights"));
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
Console.WriteLine($"encode speed{(CpuConv.LibtorchDefaults ? " (plain libtorch conv1d/linear)" : "")}: {rtf:F2}x real time with {threads} thread(s) = {rtf / threads:F2}x real time per core");

{
    // where the time goes: each stage of one encode on its own, best wall time over the repeats
    var stage = new Dictionary<string, double>();
    void Stage(string name, Func<Tensor> f)
    {
        var sw = Stopwatch.StartNew();
        f();
        double t = sw.Elapsed.TotalSeconds;
        stage[name] = stage.TryGetValue(name, out var b) ? Math.Min(b, t) : t;
    }
    for (int r = 0; r < repeats; r++)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = tensor(wave).unsqueeze(0);
        Tensor x16 = null!, hidden = null!, acoustic = null!, semantic = null!;
        Stage("resample", () => x16 = tok.Resample24kTo16k(x));
        Stage("HuBERT", () => hidden = HubertForward.HiddenStates(tok.Weights, torch.nn.functional.pad(x16, [160, 160])));
        var feats = hidden.mean([0L])[.., TensorIndex.Slice(null, null, sizes.SemanticDownsampleFactor), ..].transpose(1, 2);
        Stage("semantic encoder", () => semantic = SemanticEncoder.Forward(tok.Weights, feats));
        Stage("DAC encoder pass", () => acoustic = DacCodec.Encode(tok.Weights, x.unsqueeze(1)));
        long frames = Math.Min(acoustic.shape[2], semantic.shape[2]);
        var e = torch.cat([acoustic[.., .., ..(int)frames], semantic[.., .., ..(int)frames]], 1).transpose(1, 2);
        Stage("fc_prior + RVQ", () => ResidualVq.Encode(tok.Weights,
            CpuConv.Linear(e, tok.Weights["fc_prior.weight"], tok.Weights["fc_prior.bias"]).reshape(frames, sizes.QuantizerDim)).Codes);
    }
    var plan = tok.PlanFor(n);
    Console.WriteLine($"stages (best of {repeats}): {string.Join(", ", stage.Select(kv => $"{kv.Key} {kv.Value:F3} s"))}; the DAC pass runs x{(plan.Repadded ? 2 : 1)} for this length");
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
