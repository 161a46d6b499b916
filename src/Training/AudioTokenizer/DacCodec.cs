using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The descript-audio-codec encoder (<c>encoder.</c>) and decoder (<c>decoder_2.</c>) as used by the Higgs tokenizer.</summary>
public static class DacCodec
{
    /// <summary>Snake: x + sin²(αx)/(α+1e-9), α per channel (1, C, 1); the epsilon matters for tiny α.</summary>
    public static Tensor Snake(Tensor x, Tensor alpha) => x + (alpha + 1e-9).reciprocal() * sin(alpha * x).pow(2);

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

    private static Tensor ResidualUnit(TokenizerCheckpoint w, string p, Tensor x, int dilation)
    {
        var y = Snake(x, w[p + ".block.0.alpha"]);
        y = F.conv1d(y, w[p + ".block.1.weight"], w[p + ".block.1.bias"], dilation: dilation, padding: 3 * dilation);
        y = Snake(y, w[p + ".block.2.alpha"]);
        y = F.conv1d(y, w[p + ".block.3.weight"], w[p + ".block.3.bias"]);
        long crop = (x.shape[^1] - y.shape[^1]) / 2;
        if (crop > 0) x = x[.., .., (int)crop..^(int)crop];
        return x + y;
    }

    /// <summary>(B, 1, N) → (B, D, Ta).</summary>
    public static Tensor Encode(TokenizerCheckpoint w, Tensor x)
    {
        var r = w.Sizes.Ratios;
        if (EncoderFrames(r, x.shape[^1]) < 1)
            throw new ArgumentException($"acoustic encoder input of {x.shape[^1]} samples is too short for its strided convolutions");
        x = F.conv1d(x, w["encoder.block.0.weight"], w["encoder.block.0.bias"], padding: 3);
        for (int i = 0; i < r.Length; i++)
        {
            var p = $"encoder.block.{i + 1}.block";
            x = ResidualUnit(w, $"{p}.0", x, 1);
            x = ResidualUnit(w, $"{p}.1", x, 3);
            x = ResidualUnit(w, $"{p}.2", x, 9);
            x = Snake(x, w[$"{p}.3.alpha"]);
            x = F.conv1d(x, w[$"{p}.4.weight"], w[$"{p}.4.bias"], stride: r[i], padding: Pad(r[i]));
        }
        x = Snake(x, w[$"encoder.block.{r.Length + 1}.alpha"]);
        var last = $"encoder.block.{r.Length + 2}";
        return F.conv1d(x, w[last + ".weight"], w[last + ".bias"], padding: 1);
    }

    /// <summary>(B, D, T) → (B, 1, hop·T). No tanh, no clipping.</summary>
    public static Tensor Decode(TokenizerCheckpoint w, Tensor z)
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
