using System.Diagnostics;
using System.Globalization;
using System.Net;
using HiggsCluster.GpuWorker.AllReduce;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench allreduce`: the CPU TCP ring (the cluster's CPU backend) on loopback with 2 and 3 ranks (one thread
/// per rank, real sockets), for one LoRA gradient bucket of the 3B model (39.5M fp32 values at r=16, 158 MB) and a
/// small one. Bus bandwidth = 2(n−1)/n · bytes / time (what each rank sends), as nccl-tests reports it.
/// </summary>
internal static class AllReduceBench
{
    public const long Bucket3B = 39_500_000;

    public static int Run(BenchArgs a)
    {
        int repeats = Math.Max(5, a.Int("repeat", 5));
        long big = a.Int("floats", (int)Bucket3B);
        foreach (int world in new[] { 2, 3 })
            foreach (long count in new[] { 1_000_000L, big })
            {
                var times = Measure(world, (int)count, repeats);
                double bytes = count * 4.0;
                var busBw = times.Select(t => 2.0 * (world - 1) / world * bytes / t / 1e9).ToList();
                string tag = count == big ? "bucket3b" : "1m";
                Console.WriteLine(Stats.Line($"allreduce_ring{world}_{tag}_s", times, "s"));
                Console.WriteLine(Stats.Line($"allreduce_ring{world}_{tag}_busbw_GBps", busBw, "GB/s"));
            }
        return 0;
    }

    private static List<double> Measure(int world, int count, int repeats)
    {
        var listeners = Enumerable.Range(0, world).Select(_ => RingListener.Start()).ToArray();
        var peers = listeners.Select(l => (IPEndPoint)l.EndPoint).ToList();
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var rings = Task.WhenAll(Enumerable.Range(0, world).Select(r =>
            TcpRingAllReduce.ConnectAsync(listeners[r], r, peers, 1, key, TimeSpan.FromSeconds(30)))).GetAwaiter().GetResult();
        try
        {
            var data = Enumerable.Range(0, world).Select(r => Enumerable.Repeat((float)(r + 1), count).ToArray()).ToArray();
            var times = new List<double>();
            for (int i = 0; i <= repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                var threads = Enumerable.Range(0, world).Select(r => new Thread(() => rings[r].AllReduceSum(GradientBucket.Host(data[r])))).ToList();
                threads.ForEach(t => t.Start());
                threads.ForEach(t => t.Join());
                if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
            }
            // every element went through 1 + repeats sums of the ranks' (r+1): a wrong ring would not land here
            double expect = world * (world + 1) / 2.0 * Math.Pow(world, repeats);
            if (Math.Abs(data[0][count / 2] - expect) > expect * 1e-5)
                throw new InvalidOperationException($"all-reduce result {data[0][count / 2]} differs from {expect.ToString(CultureInfo.InvariantCulture)}");
            return times;
        }
        finally
        {
            foreach (var r in rings) r.Dispose();
            foreach (var l in listeners) l.Dispose();
        }
    }
}
