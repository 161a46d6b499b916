using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

public enum DecoderLayerKind { Plain, DualFfn, FastForward }

/// <summary>Per-forward tensors every decoder layer reads (built once by the model).</summary>
public sealed class LayerContext
{
    public required Tensor Cos { get; init; }
    public required Tensor Sin { get; init; }
    /// <summary>Causal + key-padding mask, or null when nothing is padded (plain causal SDPA).</summary>
    public Tensor? CausalMask { get; init; }
    /// <summary>Fast-forward layers: text may not attend to audio-code keys.</summary>
    public Tensor? FastForwardMask { get; init; }
    /// <summary>Audio self-attention: audio-code queries attend to earlier audio-code keys only.</summary>
    public Tensor? AudioAttentionMask { get; init; }
    /// <summary>(B,L) bool: positions holding discrete audio codes (audio-in codes or audio-out).</summary>
    public required Tensor AudioCodes { get; init; }
    /// <summary>Flat (B*L) row indices of audio-code and of other positions.</summary>
    public required Tensor AudioRows { get; init; }
    public required Tensor TextRows { get; init; }
}

/// <summary>
/// One decoder layer: plain Llama, the Higgs dual-FFN layer (audio positions use their own norms and MLP, and
/// optionally an extra audio-only attention), or a fast-forward layer (audio positions skip it and are hidden
/// from the text attention). Field names are the checkpoint's.
/// </summary>
public sealed class DecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;
    private readonly LlamaMlp? audio_mlp;
    private readonly RmsNorm? audio_input_layernorm;
    private readonly RmsNorm? audio_post_attention_layernorm;
    private readonly LlamaAttention? audio_attn;
    private readonly RmsNorm? audio_post_audio_attn_layer_norm;

    public DecoderLayerKind Kind { get; }
    public bool HasAudioAttention => audio_attn is not null;

    public DecoderLayer(LlamaTextConfig c, DecoderLayerKind kind, bool audioAttention, ScalarType dtype, Device device) : base("layer")
    {
        if (audioAttention && kind != DecoderLayerKind.DualFfn)
            throw new ArgumentException("audio self-attention exists only in dual-FFN layers");
        Kind = kind;
        self_attn = new LlamaAttention(c, dtype, device);
        mlp = new LlamaMlp(c, dtype, device);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        if (kind == DecoderLayerKind.DualFfn)
        {
            audio_mlp = new LlamaMlp(c, dtype, device);
            audio_input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
            audio_post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
            if (audioAttention)
            {
                audio_attn = new LlamaAttention(c, dtype, device);
                audio_post_audio_attn_layer_norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
            }
        }
        RegisterComponents();
    }

    /// <param name="cache">Generation: this layer's KV cache; the masks in <paramref name="ctx"/> then span the cache.</param>
    public Tensor Forward(Tensor x, LayerContext ctx, KvLayer? cache = null)
    {
        switch (Kind)
        {
            case DecoderLayerKind.Plain:
            {
                var h = x.Plus(self_attn.Forward(input_layernorm.forward(x), ctx.Cos, ctx.Sin, ctx.CausalMask, cache));
                return h.Plus(mlp.forward(post_attention_layernorm.forward(h)));
            }
            case DecoderLayerKind.FastForward:
            {
                // Only audio codes: every row passes through unchanged and no text query ever reads their keys.
                if (cache is not null && ctx.TextRows.shape[0] == 0)
                {
                    cache.AppendSkipped(x.shape[1]);
                    return x;
                }
                var h = x.Plus(self_attn.Forward(input_layernorm.forward(x), ctx.Cos, ctx.Sin, ctx.FastForwardMask, cache));
                h = h.Plus(mlp.forward(post_attention_layernorm.forward(h)));
                return torch.where(ctx.AudioCodes.unsqueeze(-1), x, h);
            }
            default:
                return DualForward(x, ctx, cache);
        }
    }

    private Tensor DualForward(Tensor x, LayerContext ctx, KvLayer? cache)
    {
        var m = ctx.AudioCodes.unsqueeze(-1);
        var hn = torch.where(m, audio_input_layernorm!.forward(x), input_layernorm.forward(x));
        var residual = x;
        if (audio_attn is not null)
        {
            if (cache is not null) throw new NotSupportedException("audio self-attention (use_audio_out_self_attention) has no KV-cache path");
            var r2 = x.Plus(audio_attn.Forward(hn, ctx.Cos, ctx.Sin, ctx.AudioAttentionMask));
            residual = torch.where(m, r2, x);
            hn = torch.where(m, audio_post_audio_attn_layer_norm!.forward(r2), hn);
        }
        var h = residual.Plus(self_attn.Forward(hn, ctx.Cos, ctx.Sin, ctx.CausalMask, cache));

        // Row-wise routing: text rows through mlp, audio-code rows through audio_mlp.
        long b = h.shape[0], l = h.shape[1], d = h.shape[2];
        var flat = h.reshape(b * l, d);
        var outFlat = flat;
        if (ctx.TextRows.shape[0] > 0)
        {
            var t = flat.index_select(0, ctx.TextRows);
            outFlat = outFlat.index_add(0, ctx.TextRows, mlp.forward(post_attention_layernorm.forward(t)), HeldScalars.One);
        }
        if (ctx.AudioRows.shape[0] > 0)
        {
            var a = flat.index_select(0, ctx.AudioRows);
            outFlat = outFlat.index_add(0, ctx.AudioRows, audio_mlp!.forward(audio_post_attention_layernorm!.forward(a)), HeldScalars.One);
        }
        return outFlat.view(b, l, d);
    }
}
