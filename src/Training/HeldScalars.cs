using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training;

/// <summary>
/// TorchSharp ops with a number in them, each with its Scalar held until the native call has returned. TorchSharp 0.107
/// hands libtorch the handle of a Scalar it converts on the spot (from a C# number, and inside many of its own
/// overloads: <c>a + b</c> passes alpha 1, <c>square()</c> is <c>pow(2)</c>, <c>elu(x, 1.0)</c>, <c>arange(n)</c>)
/// without keeping that Scalar reachable, so the finalizer thread can free it while libtorch reads it: a native abort
/// (Scalar.h toFloat) or a wrong value. Each helper calls the same native op with the same Scalar values and types as the
/// TorchSharp overload it replaces (int/long, float and double stay distinct), so results are bit-identical.
/// src/ must not convert numbers to Scalars any other way (see the NoImplicitScalar test).
/// </summary>
public static class HeldScalars
{
    /// <summary>The integer 1 TorchSharp passes as alpha in <c>add(Tensor)</c>, and as arange's step.</summary>
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar Zero = 0.ToScalar();
    /// <summary>The integer exponent of <c>square()</c> (<c>pow(2)</c>).</summary>
    public static readonly Scalar Two = 2.ToScalar();
    /// <summary>The scale and input scale <c>elu(double alpha)</c> passes.</summary>
    public static readonly Scalar OneD = 1.0.ToScalar();

    /// <summary>a + b (TorchSharp's operator passes alpha 1).</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);
    public static Tensor Plus(this Tensor a, double b) { using var s = b.ToScalar(); return a.add(s, One); }
    public static Tensor Plus(this Tensor a, float b) { using var s = b.ToScalar(); return a.add(s, One); }
    public static Tensor Plus(this Tensor a, long b) { using var s = b.ToScalar(); return a.add(s, One); }
    public static Tensor PlusInPlace(this Tensor a, double b) { using var s = b.ToScalar(); return a.add_(s, One); }
    public static Tensor PlusInPlace(this Tensor a, float b) { using var s = b.ToScalar(); return a.add_(s, One); }

    public static Tensor Minus(this Tensor a, double b) { using var s = b.ToScalar(); return a.sub(s); }
    public static Tensor Minus(this Tensor a, float b) { using var s = b.ToScalar(); return a.sub(s); }
    public static Tensor Minus(this Tensor a, long b) { using var s = b.ToScalar(); return a.sub(s); }

    /// <summary>b - a, as TorchSharp's <c>number - tensor</c>: -a + b.</summary>
    public static Tensor From(double b, Tensor a) { using var s = b.ToScalar(); return a.negative().add(s, One); }
    public static Tensor From(long b, Tensor a) { using var s = b.ToScalar(); return a.negative().add(s, One); }

    public static Tensor Times(this Tensor a, double b) { using var s = b.ToScalar(); return a.mul(s); }
    public static Tensor Times(this Tensor a, float b) { using var s = b.ToScalar(); return a.mul(s); }
    public static Tensor Times(this Tensor a, long b) { using var s = b.ToScalar(); return a.mul(s); }
    public static Tensor TimesInPlace(this Tensor a, double b) { using var s = b.ToScalar(); return a.mul_(s); }

    public static Tensor Over(this Tensor a, double b) { using var s = b.ToScalar(); return a.div(s); }
    public static Tensor Over(this Tensor a, float b) { using var s = b.ToScalar(); return a.div(s); }
    public static Tensor Over(this Tensor a, long b) { using var s = b.ToScalar(); return a.div(s); }
    public static Tensor Over(this Tensor a, long b, RoundingMode mode) { using var s = b.ToScalar(); return a.div(s, rounding_mode: mode); }

    /// <summary>b / a, as TorchSharp's <c>number / tensor</c>: reciprocal(a) * b.</summary>
    public static Tensor Into(double b, Tensor a) { using var s = b.ToScalar(); return a.reciprocal().mul(s); }

    public static Tensor Square(this Tensor a) => a.pow(Two);
    public static Tensor Pow(this Tensor a, long exponent) { using var s = exponent.ToScalar(); return a.pow(s); }

    /// <summary>functional.elu(x, alpha): TorchSharp's elu(alpha) is elu(alpha, 1.0, 1.0).</summary>
    public static Tensor Elu(Tensor x, double alpha) { using var a = alpha.ToScalar(); return x.elu(a, OneD, OneD); }

    /// <summary>arange(stop): TorchSharp's is arange(0, stop, 1) (all integers: an Int64 tensor unless dtype says otherwise).</summary>
    public static Tensor Arange(long stop, ScalarType? dtype = null, Device? device = null)
    {
        using var s = stop.ToScalar();
        return arange(Zero, s, One, dtype, device);
    }

    public static Tensor Arange(long start, long stop, long step, ScalarType? dtype = null, Device? device = null)
    {
        using var a = start.ToScalar();
        using var b = stop.ToScalar();
        using var c = step.ToScalar();
        return arange(a, b, c, dtype, device);
    }

    public static Tensor AddInPlace(this Tensor a, float b) { using var s = b.ToScalar(); return a.add_(s, One); }
    public static Tensor SubInPlace(this Tensor a, float b) { using var s = b.ToScalar(); return a.sub_(s); }
    public static Tensor DivInPlace(this Tensor a, float b) { using var s = b.ToScalar(); return a.div_(s); }
    public static Tensor DivInPlace(this Tensor a, double b) { using var s = b.ToScalar(); return a.div_(s); }
    public static Tensor MulInPlace(this Tensor a, double b) { using var s = b.ToScalar(); return a.mul_(s); }
    public static Tensor ClampMinInPlace(this Tensor a, double min) { using var s = min.ToScalar(); return a.clamp_(min: s); }
    public static Tensor ClampMax(this Tensor a, double max) { using var s = max.ToScalar(); return a.clamp(max: s); }
    public static Tensor AddcmulInPlace(this Tensor a, Tensor t1, Tensor t2, double value) { using var s = value.ToScalar(); return a.addcmul_(t1, t2, s); }
    public static Tensor AddcmulInPlace(this Tensor a, Tensor t1, Tensor t2, long value) { using var s = value.ToScalar(); return a.addcmul_(t1, t2, s); }
    public static Tensor AddcdivInPlace(this Tensor a, Tensor t1, Tensor t2, double value) { using var s = value.ToScalar(); return a.addcdiv_(t1, t2, s); }
    public static Tensor Ne(this Tensor a, long b) { using var s = b.ToScalar(); return a.ne(s); }
    public static Tensor Gt(this Tensor a, long b) { using var s = b.ToScalar(); return a.gt(s); }
    public static Tensor Gt(this Tensor a, double b) { using var s = b.ToScalar(); return a.gt(s); }
    public static Tensor Lt(this Tensor a, double b) { using var s = b.ToScalar(); return a.lt(s); }
    public static Tensor Eq(this Tensor a, double b) { using var s = b.ToScalar(); return a.eq(s); }
    public static Tensor FillInPlace(this Tensor a, long v) { using var s = v.ToScalar(); return a.fill_(s); }
    public static Tensor FillInPlace(this Tensor a, float v) { using var s = v.ToScalar(); return a.fill_(s); }
    public static Tensor IndexFillInPlace(this Tensor a, long dim, Tensor index, long v) { using var s = v.ToScalar(); return a.index_fill_(dim, index, s); }

    public static Tensor Full(long size, float value, ScalarType dtype) { using var s = value.ToScalar(); return full(size, s, dtype); }
    public static Tensor Full(long size, long value, ScalarType dtype) { using var s = value.ToScalar(); return full(size, s, dtype); }

    public static Tensor MaskedFill(this Tensor t, Tensor mask, long value) { using var s = value.ToScalar(); return t.masked_fill(mask, s); }
    public static Tensor MaskedFill(this Tensor t, Tensor mask, double value) { using var s = value.ToScalar(); return t.masked_fill(mask, s); }

    /// <summary>
    /// linalg.vector_norm(x, ord) over all elements. TorchSharp's only overload converts <paramref name="ord"/> inside,
    /// so this calls the same native function with a held Scalar.
    /// </summary>
    public static Tensor VectorNorm(Tensor x, double ord)
    {
        using var s = ord.ToScalar();
        var handle = THSLinalg_vector_norm(x.Handle, HandleOf(s), IntPtr.Zero, 0, false);
        GC.KeepAlive(x);
        GC.KeepAlive(s);
        if (handle == IntPtr.Zero) CheckForErrors();
        return Tensor.UnsafeCreateTensor(handle);
    }

    // Scalar.Handle is internal to TorchSharp; the native function is the one TorchSharp's vector_norm calls
    private static readonly Func<Scalar, IntPtr> HandleOf = typeof(Scalar)
        .GetProperty("Handle", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!
        .GetGetMethod(nonPublic: true)!.CreateDelegate<Func<Scalar, IntPtr>>();

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSLinalg_vector_norm(IntPtr tensor, IntPtr ord, IntPtr dim, int dimLength, [MarshalAs(UnmanagedType.U1)] bool keepdim);
}
