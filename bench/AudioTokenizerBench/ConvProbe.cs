using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Bench.AudioTokenizer;

/// <summary>Every conv (and HuBERT linear, as a kernel-1 conv) shape of a full-size encode of a clip, on each CPU path.</summary>
public static class ConvProbe
{
    private sealed record Shape(string Name, long C, long O, long K, long L, long Stride = 1, long Pad = 0, long Dil = 1, long Groups = 1);

    public static void Run(double seconds, int reps)
    {
        long n = (long)(seconds * 24000), h = (long)(seconds * 16000) + 320;
        var shapes = new List<Shape> { new("dac block0", 1, 64, 7, n, Pad: 3) };
        long l = n, ch = 64;
        foreach (var s in new long[] { 8, 5, 4, 2, 3 })
        {
            foreach (var d in new long[] { 1, 3, 9 }) shapes.Add(new($"dac res k7 d{d}", ch, ch, 7, l, Pad: 3 * d, Dil: d));
            shapes.Add(new("dac res k1", ch, ch, 1, l));
            shapes.Add(new($"dac down s{s}", ch, 2 * ch, 2 * s, l, s, (s + 1) / 2));
            l = (l + 2 * ((s + 1) / 2) - 2 * s) / s + 1;
            ch *= 2;
        }
        shapes.Add(new("dac final k3", 2048, 256, 3, l, Pad: 1));
        long hl = h;
        int[] hk = [10, 3, 3, 3, 3, 2, 2], hs = [5, 2, 2, 2, 2, 2, 2];
        for (int i = 0; i < hk.Length; i++)
        {
            shapes.Add(new($"hubert conv{i}", i == 0 ? 1 : 512, 512, hk[i], hl, hs[i]));
            hl = (hl - hk[i]) / hs[i] + 1;
        }
        shapes.Add(new("hubert pos conv g16", 768, 768, 128, hl, Pad: 64, Groups: 16));
        shapes.Add(new("semantic k3", 768, 768, 3, hl / 2, Pad: 1));
        shapes.Add(new("semantic k1", 768, 768, 1, hl / 2));
        shapes.Add(new("hubert linear qkvo", 768, 768, 1, hl));
        shapes.Add(new("hubert linear up", 768, 3072, 1, hl));
        shapes.Add(new("hubert linear down", 3072, 768, 1, hl));

        Console.WriteLine("thread cpu ms (best of the repeats) and GFLOP/s of F.conv1d, of im2col + sgemm, and of CpuConv.Conv1d (the port's choice)");
        Console.WriteLine($"{"layer",-20} {"C->O",-10} {"K",3} {"L",6} {"conv1d",8} {"GF/s",6} {"im2col",8} {"GF/s",6} {"CpuConv",8} {"GF/s",6} {"max|diff|",9}");
        double totalConv = 0, totalGemm = 0, totalBest = 0;
        foreach (var s in shapes)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var x = randn(1, s.C, s.L);
            var w = randn(s.O, s.C / s.Groups, s.K) * (1.0 / Math.Sqrt(s.C / s.Groups * s.K));
            var b = randn(s.O) * 0.1;
            Tensor A() => F.conv1d(x, w, b, s.Stride, s.Pad, s.Dil, s.Groups);
            Tensor G() => s.Groups == 1 ? CpuConv.Im2colSgemm(x, w, b, s.Stride, s.Pad, s.Dil) : F.conv1d(x, w, b, s.Stride, s.Pad, s.Dil, s.Groups);
            var ya = A();
            double diff;
            double ta = Best(A, reps), tg = Best(G, reps);
            // a k1 conv with dilation 2 is the same conv, but libtorch then takes oneDNN instead of its sgemm path
            Tensor C() => CpuConv.Conv1d(x, w, b, s.Stride, s.Pad, s.Dil, s.Groups);
            double tc = Best(C, reps);
            diff = (C() - ya).abs().max().item<float>();
            double flops = 2.0 * ya.shape[1] * ya.shape[2] * (s.C / s.Groups) * s.K;
            totalConv += ta; totalGemm += tg; totalBest += tc;
            Console.WriteLine($"{s.Name,-20} {s.C + "->" + s.O,-10} {s.K,3} {s.L,6} {ta * 1000,8:F2} {flops / ta / 1e9,6:F1} {tg * 1000,8:F2} {flops / tg / 1e9,6:F1} {tc * 1000,8:F2} {flops / tc / 1e9,6:F1} {diff,9:E1}");
        }
        Console.WriteLine($"sum: conv1d {totalConv * 1000:F1} ms, im2col+sgemm {totalGemm * 1000:F1} ms, CpuConv {totalBest * 1000:F1} ms (threads {torch.get_num_threads()})");
    }

    private static double Best(Func<Tensor> f, int reps)
    {
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            using var scope = torch.NewDisposeScope();
            double c0 = ThreadClock.Seconds();
            f();
            best = Math.Min(best, ThreadClock.Seconds() - c0);
        }
        return best;
    }
}
