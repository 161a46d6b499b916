using System.Diagnostics;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench scalar-race [--path op|encode|step] [--op pow|…] [--iterations N] [--gc full|young]`: runs code that hands scalars to
/// TorchSharp ops in a loop while another thread forces garbage collections and finalizers, to show whether a temporary
/// Scalar can be finalized while libtorch still reads it (TorchSharp passes scalar.Handle without keeping the Scalar alive).
/// <c>--path op</c> repeats one op (<c>--op</c>: the implicit conversions crash, <c>pow-held</c> does not);
/// <c>--path encode</c> is the data loaders' real encode path (TokenizerCodeSource → HiggsAudioTokenizer.Encode, the
/// semantic encoder's ELUs included) on a tiny random tokenizer; <c>--path step</c> is the real training step
/// (ComputeGradients + ApplyGradients) of the tiny demo model. A crash is a native abort; a clean run prints the count.
/// The encode and step paths also check every iteration's result against the first (a freed Scalar read as another
/// value would change it).
/// </summary>
internal static class ScalarRace
{
    public static int Run(BenchArgs a)
    {
        int iterations = a.Int("iterations", 2_000_000);
        string path = a.Str("path", "op");
        int every = Math.Max(1, a.Int("report-every", 10_000));
        // full: blocking full collections back to back (stops the loop for each one); young: gen-0 collections, which
        // still finalize the short-lived Scalars a call drops, with one full collection in every 64
        string gcMode = a.Str("gc", "full");
        if (gcMode is not ("full" or "young")) throw new ArgumentException($"unknown --gc {gcMode} (full or young)");
        var root = Path.Combine(Path.GetTempPath(), "higgs-scalar-race-" + Guid.NewGuid().ToString("N"));
        bool stop = false;
        long collections = 0;
        var gc = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                long n = Interlocked.Increment(ref collections);
                if (gcMode == "full" || n % 64 == 0) GC.Collect(); else GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        try
        {
            Func<int, string?> body = path switch
            {
                "op" => Op(a.Str("op", "pow")),
                "encode" => Encode(root),
                "step" => Step(root),
                _ => throw new ArgumentException($"unknown --path {path} (op, encode or step)"),
            };
            gc.Start();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++)
            {
                if (body(i) is { } wrong)
                {
                    Console.WriteLine($"scalar-race: {path}: iteration {i}: {wrong}");
                    return 1;
                }
                if ((i + 1) % every == 0)
                    Console.WriteLine($"scalar-race: {path}: {i + 1} iterations clean, {clock.Elapsed.TotalSeconds:F0} s, {Interlocked.Read(ref collections)} forced GCs");
            }
            Console.WriteLine($"scalar-race: {path} (--gc {gcMode}): {iterations} iterations without a failure in {clock.Elapsed.TotalSeconds:F0} s, {Interlocked.Read(ref collections)} forced GCs");
            return 0;
        }
        finally
        {
            Volatile.Write(ref stop, true);
            if (gc.IsAlive) gc.Join();
            try { Directory.Delete(root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static Func<int, string?> Op(string op)
    {
        var two = 2.ToScalar();          // the held Scalar lives as long as the bench
        var x = randn(16);
        return iteration =>
        {
            using var scope = NewDisposeScope();
            _ = op switch
            {
                "pow" => x.pow(2),
                "pow-held" => x.pow(two),          // a Scalar variable that outlives the call
                "square" => x.square(),
                "elu" => nn.functional.elu(x, 1.0),
                "add" => x + 1e-5,
                "mul" => x * 2.0,
                _ => throw new ArgumentException($"unknown --op {op}"),
            };
            return null;
        };
    }

    /// <summary>The loaders' path: a 0.2 s clip through the code source into the tokenizer's encoder and quantizer.</summary>
    private static Func<int, string?> Encode(string root)
    {
        var dir = Path.Combine(root, "tokenizer");
        TinyTokenizerWriter.Write(dir, TinyTokenizerWriter.TinySizes, seed: 7);
        var source = new TokenizerCodeSource(HiggsAudioTokenizer.Load(dir));
        var rng = new Random(1);
        var wave = Enumerable.Range(0, 4800).Select(i => (float)(0.4 * Math.Sin(2 * Math.PI * 220 * i / 24000.0) + 0.05 * (rng.NextDouble() * 2 - 1))).ToArray();
        var clip = new AudioRef(null, null, null, null, "audio");
        long[]? first = null;
        return _ =>
        {
            using var scope = NewDisposeScope();
            var codes = source.Codes(clip, () => new AudioClip(wave, 24000)).contiguous().data<long>().ToArray();
            first ??= codes;
            return codes.AsSpan().SequenceEqual(first) ? null : "codes differ from the first iteration's";
        };
    }

    /// <summary>The workers' path: one full training step of the tiny demo model (real data path, real tokenizer codes).</summary>
    private static Func<int, string?> Step(string root)
    {
        var ws = DemoWorkspace.Create(Path.Combine(root, "ws"), entries: 8, hidden: 32, layers: 2);
        var o = ws.TrainOptions(Path.Combine(root, "run"), maxSteps: 1_000_000);
        o.BatchSize = 2; o.ValidationFraction = 0; o.Progress = "off"; o.Plots = false; o.TensorBoard = false; o.ValSteps = 0; o.SaveSteps = 0;
        var s = TrainingSession.Open(o, TextWriter.Null);
        var batches = s.Plan.MicroBatches(0).Select(ids => s.Store.Collate(ids)).ToList();
        double? firstLoss = null;
        return i =>
        {
            using var scope = NewDisposeScope();
            // the same batches every time, applied at step 0's learning rate: the loss must stay finite
            var g = s.Engine.ComputeGradients(batches, 0);
            double loss = g.WeightedLoss / g.Weight;
            s.Engine.ApplyGradients(g, 0);
            firstLoss ??= loss;
            return double.IsFinite(loss) ? null : $"loss {loss} (first {firstLoss})";
        };
    }
}
