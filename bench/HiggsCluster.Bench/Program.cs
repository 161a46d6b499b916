using System.Diagnostics;
using HiggsCluster.Bench;

// Benchmarks print throughputs and ratios; nothing here asserts a timing.
HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
var verb = args.Length > 0 ? args[0] : "";
var opts = BenchArgs.Parse(args.Skip(1).ToArray());
switch (verb)
{
    case "whisper": return WhisperBench.Run(opts);
    case "collate": return CollateBench.Run(opts);
    case "data": return DataPathBench.Run(opts);
    case "checkpoint-3b": return CheckpointBench.Run(opts);
    case "checkpoint-3b-load": return CheckpointBench.Load(opts);
    case "train": return TrainBench.Run(opts);
    case "serializer": return SerializerBench.Run(opts);
    case "cluster": return ClusterBench.Run(opts);
    case "chaos": return ChaosBench.Run(opts);
    case "peer": return PeerBench.Run(opts);
    case "tokenizer": return TokenizerBench.Run(opts);
    case "allreduce": return AllReduceBench.Run(opts);
    case "gpu": return GpuBench.Run(opts);
    case "generate": return GenerateBench.Run(opts);
    case "scalar-race": return ScalarRace.Run(opts);
    default:
        Console.Error.WriteLine("usage: higgs-bench whisper [--clips N] [--repeat R] [--batch B] [--threads T] [--python PATH]");
        Console.Error.WriteLine("       higgs-bench collate [--batches N] [--batch B]");
        Console.Error.WriteLine("       higgs-bench data [--entries N] [--batch B]");
        Console.Error.WriteLine("       higgs-bench checkpoint-3b [--dir D] [--shard-gb 5] [--keep 1]   (~11.5 GB of disk, ~12 GB of RAM)");
        Console.Error.WriteLine("       higgs-bench train [--steps 500] [--hidden 64] [--layers 2] [--batch 4] [--entries 16]");
        Console.Error.WriteLine("       higgs-bench serializer [--mib 4] [--repeat 10]");
        Console.Error.WriteLine("       higgs-bench cluster [--hidden 256] [--layers 6] [--steps 40] [--entries 24] [--batch 4] [--threads 1] [--mib 8]");
        Console.Error.WriteLine("       higgs-bench chaos [--minutes 4] [--seed 1] [--entries 20] [--epochs 4] [--threads 1]   (random worker/loader kills on loopback; lost samples must be 0)");
        Console.Error.WriteLine("       higgs-bench tokenizer [--repeat 5] [--tokenizer PATH]");
        Console.Error.WriteLine("       higgs-bench allreduce [--repeat 5] [--floats 39500000]");
        Console.Error.WriteLine("       higgs-bench gpu [--batch 4] [--seq 4096 | --frames 750] [--grad-checkpointing 1] [--lora-r 16] [--steps 10] [--warmup 2] [--peak-tflops from the GPU name] [--device cuda:0] [--peer auto|0|PYTHON] [--peer-timeout 150] [--shapes 3b|small --hidden 256 --layers 2]   (see bench/README.md)");
        Console.Error.WriteLine("       higgs-bench scalar-race [--path op|encode|step] [--op pow|pow-held|square|elu|add|mul] [--iterations 2000000] [--report-every 10000]   (diagnostic; crashes when the hazard is present)");
        Console.Error.WriteLine("       higgs-bench peer [--hidden 512] [--layers 4] [--batch 2] [--steps 6] [--threads N] [--python PATH] [--keep 1 --dir D]");
        return 2;
}

namespace HiggsCluster.Bench
{
    internal sealed class BenchArgs
    {
        private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

        public static BenchArgs Parse(string[] args)
        {
            var a = new BenchArgs();
            for (int i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                    throw new ArgumentException($"expected --name value, got '{args[i]}'");
                a._values[args[i][2..]] = args[++i];
            }
            return a;
        }

        public int Int(string name, int d) => _values.TryGetValue(name, out var v) ? int.Parse(v) : d;
        public string Str(string name, string d) => _values.TryGetValue(name, out var v) ? v : d;
    }

    internal static class Timing
    {
        /// <summary>
        /// Best of <paramref name="repeats"/> timed calls of <paramref name="body"/> (seconds), after one untimed
        /// warm-up call; the best run is the least disturbed by other processes on a shared machine.
        /// </summary>
        public static double Best(int repeats, Action body) => Samples(repeats, body).Min();

        /// <summary>Seconds of each of <paramref name="repeats"/> timed calls (at least one), after one untimed warm-up call.</summary>
        public static List<double> Samples(int repeats, Action body)
        {
            body();
            var times = new List<double>();
            for (int r = 0; r < Math.Max(1, repeats); r++)
            {
                var sw = Stopwatch.StartNew();
                body();
                times.Add(sw.Elapsed.TotalSeconds);
            }
            return times;
        }
    }
}
