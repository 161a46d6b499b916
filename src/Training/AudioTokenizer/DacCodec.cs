using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The descript-audio-codec encoder (<c>encoder.</c>) and decoder (<c>decoder_2.</c>) as used by the Higgs tokenizer.</summary>
public static class DacCodec
{
    /// <summary>Snake: x + sin²(αx)/(α+1e-9), α per channel (1, C, 1); the epsilon matters for tiny α.</summary>
    public static Tensor Snake(Tensor x, Tensor alpha)
    {
        // one buffer instead of five temporaries; each in-place step is the same float operation as the plain
        // expression x + (α+1e-9)⁻¹ · sin(αx)², so the result is bitwise equal to it
        using var scope = NewDisposeScope();
        var y = alpha * x;
        y.sin_().pow_(HeldScalars.Two).mul_(alpha.Plus(1e-9).reciprocal()).PlusInPlace(x);
        return y.MoveToOuterDisposeScope();
    }

    private static int Pad(int stride) => (stride + 1) / 2;

    /// <summary>Frames after the acoustic encoder for N samples, or -1 where a strided conv would get fewer samples than its kernel.</summary>
    public static long EncoderFrames(int[] ratios, long n)
    {
        long l = n; // the k7/p3 convs, the residual units and the final k3/p1 conv keep the length
        foreach (var s in ratios)
        {
            long padded = l + 2 * Pad(s);
            if (padded < 2 * s) return -1;
            l = (padded - 2 * s) / s + 1;
        }
        return l;
    }

    private static Tensor ResidualUnit(TokenizerWeights w, string p, Tensor x, int dilation)
    {
        // a scope per unit frees its temporaries at once, so the allocator reuses their memory instead of faulting in
        // fresh pages for every op of the encode
        using var scope = NewDisposeScope();
        var y = Snake(x, w[p + ".block.0.alpha"]);
        y = CpuConv.Conv1d(y, w[p + ".block.1.weight"], w[p + ".block.1.bias"], dilation: dilation, padding: 3 * dilation);
        y = Snake(y, w[p + ".block.2.alpha"]);
        y = CpuConv.Conv1d(y, w[p + ".block.3.weight"], w[p + ".block.3.bias"]);
        long crop = (x.shape[^1] - y.shape[^1]) / 2;
        if (crop > 0) x = x[.., .., (int)crop..^(int)crop];
        return y.PlusInPlace(x).MoveToOuterDisposeScope();
    }

    /// <summary>(B, 1, N) → (B, D, Ta).</summary>
    public static Tensor Encode(TokenizerWeights w, Tensor x)
    {
        var r = w.Sizes.Ratios;
        if (EncoderFrames(r, x.shape[^1]) < 1)
            throw new ArgumentException($"acoustic encoder input of {x.shape[^1]} samples is too short for its strided convolutions");
        using var scope = NewDisposeScope();
        x = CpuConv.Conv1d(x, w["encoder.block.0.weight"], w["encoder.block.0.bias"], padding: 3);
        for (int i = 0; i < r.Length; i++)
        {
            var p = $"encoder.block.{i + 1}.block";
            x = Step(x, h => ResidualUnit(w, $"{p}.0", h, 1));
            x = Step(x, h => ResidualUnit(w, $"{p}.1", h, 3));
            x = Step(x, h => ResidualUnit(w, $"{p}.2", h, 9));
            x = Step(x, h => Snake(h, w[$"{p}.3.alpha"]));
            x = Step(x, h => CpuConv.Conv1d(h, w[$"{p}.4.weight"], w[$"{p}.4.bias"], stride: r[i], padding: Pad(r[i])));
        }
        x = Step(x, h => Snake(h, w[$"encoder.block.{r.Length + 1}.alpha"]));
        var last = $"encoder.block.{r.Length + 2}";
        return CpuConv.Conv1d(x, w[last + ".weight"], w[last + ".bias"], padding: 1).MoveToOuterDisposeScope();
    }

    /// <summary>f(x), then x is freed at once (x must be a temporary of the caller's scope, never its input).</summary>
    private static Tensor Step(Tensor x, Func<Tensor, Tensor> f)
    {
        var y = f(x);
        x.Dispose();
        return y;
    }

    /// <summary>(B, D, T) → (B, 1, hop·T). No tanh, no clipping.</summary>
    public static Tensor Decode(TokenizerWeights w, Tensor z)
    {
        var r = w.Sizes.Ratios;
        var x = F.conv1d(z, w["decoder_2.model.0.weight"], w["decoder_2.model.0.bias"], padding: 3);
        for (int i = 0; i < r.Length; i++)
        {
            var p = $"decoder_2.model.{i + 1}.block";
            x = Snake(x, w[$"{p}.0.alpha"]);
            x = F.conv_transpose1d(x, w[$"{p}.1.weight"], w[$"{p}.1.bias"], stride: r[i], padding: Pad(r[i]), output_padding: r[i] % 2);
            x = ResidualUnit(w, $"{p}.2", x, 1);
            x = ResidualUnit(w, $"{p}.3", x, 3);
            x = ResidualUnit(w, $"{p}.4", x, 9);
        }
        x = Snake(x, w[$"decoder_2.model.{r.Length + 1}.alpha"]);
        var last = $"decoder_2.model.{r.Length + 2}";
        return F.conv1d(x, w[last + ".weight"], w[last + ".bias"], padding: 3);
    }
}
