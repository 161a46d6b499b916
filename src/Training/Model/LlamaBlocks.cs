using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>The one place where attention is computed: SDPA with an optional boolean "may attend" mask.</summary>
public static class Attention
{
    /// <summary>
    /// q (B,Hq,L,D); k, v (B,Hkv,L,D). KV heads are repeated so q head h reads kv head h / (Hq/Hkv) (Llama repeat_kv).
    /// <paramref name="allowed"/> (B,1,L,L) bool, true = may attend; null = plain causal.
    /// </summary>
    public static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? allowed)
    {
        long rep = q.shape[1] / k.shape[1];
        if (rep > 1)
        {
            k = k.repeat_interleave(rep, dim: 1);
            v = v.repeat_interleave(rep, dim: 1);
        }
        if (allowed is null) return nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        return nn.functional.scaled_dot_product_attention(q, k, v, allowed);
    }

    /// <summary>causal ∧ key valid ∧ extra; rows with no allowed key attend to themselves so no NaN reaches backward.</summary>
    public static Tensor BuildMask(Tensor keyValid, Tensor? queryOk = null)
    {
        long b = keyValid.shape[0], l = keyValid.shape[1];
        var causal = torch.ones(l, l, ScalarType.Bool, keyValid.device).tril();
        var m = causal.unsqueeze(0) & keyValid.unsqueeze(1);
        if (queryOk is not null) m = m & queryOk.unsqueeze(2);
        var empty = m.any(dim: -1).logical_not();
        var eye = torch.eye(l, dtype: ScalarType.Bool, device: keyValid.device).unsqueeze(0);
        m = m | (empty.unsqueeze(2) & eye);
        return m.view(b, 1, l, l);
    }
}

/// <summary>Llama rotary embedding with optional llama3 frequency scaling; cos/sin are computed per call, never stored.</summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _invFreq;

    public RotaryEmbedding(LlamaTextConfig cfg)
    {
        int d = cfg.HeadDim;
        // Same fp32 tensor ops as transformers' default + llama3 rope init, so inv_freq matches bit for bit.
        using var _ = torch.NewDisposeScope();
        var exponent = HeldScalars.Arange(0, d, 2, ScalarType.Int64).to_type(ScalarType.Float32).Over(d);
        var inv = HeldScalars.Into(1.0, torch.pow(torch.tensor(cfg.RopeTheta, ScalarType.Float32), exponent));
        if (cfg.RopeScaling is { RopeType: "llama3" } r)
        {
            double old = r.OriginalMaxPositionEmbeddings;
            double lowWl = old / r.LowFreqFactor, highWl = old / r.HighFreqFactor;
            var wl = HeldScalars.Into(2 * Math.PI, inv);
            var llama = torch.where(wl.Gt(lowWl), inv.Over(r.Factor), inv);
            var smooth = HeldScalars.Into(old, wl).Minus(r.LowFreqFactor).Over(r.HighFreqFactor - r.LowFreqFactor);
            var smoothed = (HeldScalars.From(1, smooth) * llama).Over(r.Factor).Plus(smooth * llama);
            var medium = wl.Lt(highWl).logical_not() & wl.Gt(lowWl).logical_not();
            inv = torch.where(medium, smoothed, llama);
        }
        _invFreq = inv.data<float>().ToArray();
    }

    /// <summary>positions (B,L) long → cos, sin (B,L,D) in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positions, ScalarType dtype)
    {
        var inv = torch.tensor(_invFreq, device: positions.device);
        var ang = positions.to_type(ScalarType.Float32).unsqueeze(-1) * inv;   // (B,L,D/2)
        var emb = torch.cat(new[] { ang, ang }, -1);
        return (emb.cos().to_type(dtype), emb.sin().to_type(dtype));
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var x1 = x[.., .., .., ..(int)half];
        var x2 = x[.., .., .., (int)half..];
        var rot = torch.cat(new[] { x2.neg(), x1 }, -1);
        return (x * cos.unsqueeze(1)).Plus(rot * sin.unsqueeze(1));
    }
}

/// <summary>Llama attention (no biases), named as in the checkpoint: q_proj, k_proj, v_proj, o_proj.</summary>
public sealed class LlamaAttention : nn.Module
{
    private readonly Projection q_proj, k_proj, v_proj, o_proj;
    private readonly int _heads, _kvHeads, _headDim;

    public LlamaAttention(LlamaTextConfig c, ScalarType dtype, Device device) : base("self_attn")
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim;
        q_proj = new Projection(c.HiddenSize, (long)_heads * _headDim, false, dtype, device);
        k_proj = new Projection(c.HiddenSize, (long)_kvHeads * _headDim, false, dtype, device);
        v_proj = new Projection(c.HiddenSize, (long)_kvHeads * _headDim, false, dtype, device);
        o_proj = new Projection((long)_heads * _headDim, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    /// <param name="cache">When given, the new keys and values are appended to it and the queries attend over the
    /// whole cache; <paramref name="allowed"/> must then be the (1,1,L,T) mask over the cache.</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? allowed, KvLayer? cache = null)
    {
        if (cache is not null && allowed is null)
            throw new ArgumentException("attention over a KV cache needs an explicit mask (SDPA's is_causal aligns queries to the first key)");
        long b = x.shape[0], l = x.shape[1];
        var q = q_proj.forward(x).view(b, l, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, l, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, l, _kvHeads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(k, v);
        var o = Attention.Sdpa(q, k, v, allowed);
        return o_proj.forward(o.transpose(1, 2).reshape(b, l, (long)_heads * _headDim));
    }
}

/// <summary>Llama MLP: down(silu(gate(x)) * up(x)).</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly Projection gate_proj, up_proj, down_proj;

    public LlamaMlp(LlamaTextConfig c, ScalarType dtype, Device device) : base("mlp")
    {
        gate_proj = new Projection(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        up_proj = new Projection(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        down_proj = new Projection(c.IntermediateSize, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
}
