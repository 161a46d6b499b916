using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// conv1d and linear with the fastest libtorch kernel per layer shape on the CPU (measured with
/// <c>AudioTokenizerBench convs</c>); other devices get plain <c>F.conv1d</c> / <c>F.linear</c>. Every path computes
/// the same convolution; only the float summation order differs (max |diff| ~3e-6 on unit-scale data).
/// <list type="bullet">
/// <item>Kernel-1 convs and linears go to oneDNN: libtorch sends an undilated, unstrided 1×1 conv of a single clip on
/// one thread (and every linear) to MKL sgemm, which on AVX-512 CPUs without Intel's MKL fast path runs at about half
/// the oneDNN speed. A dilation (meaningless for a kernel of 1) is what makes libtorch pick oneDNN.</item>
/// <item>Convs with a single input channel, or with more than <see cref="ReorderLimitBytes"/> of weights, run as an
/// explicit im2col + one sgemm: oneDNN re-lays the whole weight out on every call, which for the DAC encoder's
/// 50 MB 1024→2048 strided conv costs more than the product itself.</item>
/// </list>
/// </summary>
public static class CpuConv
{
    /// <summary>Weights above this size skip oneDNN (glibc serves larger blocks as fresh mmaps, so each reorder also page-faults).</summary>
    public const long ReorderLimitBytes = 32L << 20;

    /// <summary>
    /// On this thread, send everything to plain <c>F.conv1d</c> / <c>F.linear</c> (comparisons of the two paths'
    /// codes on full-size models in <c>AudioTokenizerBench agree</c>).
    /// </summary>
    [ThreadStatic] public static bool LibtorchDefaults;

    private static bool Fast(Tensor x) => !LibtorchDefaults && x.device_type == TorchSharp.DeviceType.CPU;

    /// <summary>Same arguments and result as <c>F.conv1d</c> on (B, C, L).</summary>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias, long stride = 1, long padding = 0, long dilation = 1, long groups = 1)
    {
        if (!Fast(x) || x.dim() != 3 || weight.dim() != 3 || groups != 1)
            return F.conv1d(x, weight, bias, stride, padding, dilation, groups);
        long k = weight.shape[2];
        if (k == 1 && stride == 1 && padding == 0) return Pointwise(x, weight, bias);
        if (x.shape[1] == 1 || weight.NumberOfElements * weight.ElementSize > ReorderLimitBytes)
            return Im2colSgemm(x, weight, bias, stride, padding, dilation);
        return F.conv1d(x, weight, bias, stride, padding, dilation, groups);
    }

    /// <summary>F.linear on (B, T, in) → (B, T, out), through the kernel-1 oneDNN conv on the CPU.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Fast(x) || x.dim() != 3) return F.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        return Pointwise(x.transpose(1, 2), weight.unsqueeze(2), bias).transpose(1, 2).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>A kernel-1 conv (B, C, T) × (O, C, 1) → (B, O, T) on oneDNN (see the class remarks).</summary>
    public static Tensor Pointwise(Tensor x, Tensor weight, Tensor? bias) =>
        F.conv1d(x, weight, bias, dilation: Fast(x) ? 2 : 1);

    /// <summary>conv1d (groups 1) as one sgemm over an explicit (C·K, T) column buffer.</summary>
    public static Tensor Im2colSgemm(Tensor x, Tensor weight, Tensor? bias, long stride = 1, long padding = 0, long dilation = 1)
    {
        long b = x.shape[0], c = x.shape[1], o = weight.shape[0], k = weight.shape[2];
        if (weight.shape[1] != c) throw new ArgumentException($"conv weight [{string.Join(",", weight.shape)}] does not take {c} input channels");
        using var scope = NewDisposeScope();
        var xp = padding > 0 ? F.pad(x, [padding, padding]) : x.contiguous();
        long lp = xp.shape[2];
        long t = (lp - dilation * (k - 1) - 1) / stride + 1;
        if (t < 1) throw new ArgumentException($"conv input of {x.shape[2]} samples (padding {padding}) is shorter than the kernel's reach {dilation * (k - 1) + 1}");
        // row (c, j) of the column buffer holds xp[c, f·stride + j·dilation] for every output frame f
        var cols = xp.as_strided([b, c, k, t], [c * lp, lp, dilation, stride]).reshape(b, c * k, t);
        var y = weight.reshape(o, c * k).matmul(cols);
        if (bias is not null) y.PlusInPlace(bias.view(o, 1));
        return y.MoveToOuterDisposeScope();
    }
}
