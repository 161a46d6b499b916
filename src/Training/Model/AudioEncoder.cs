using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>Whisper encoder attention: q/v/out projections with bias, k without.</summary>
public sealed class WhisperAttention : nn.Module
{
    private readonly Projection q_proj, k_proj, v_proj, out_proj;
    private readonly int _heads, _headDim;

    public WhisperAttention(AudioEncoderConfig c, ScalarType dtype, Device device) : base("self_attn")
    {
        _heads = c.EncoderAttentionHeads; _headDim = c.DModel / c.EncoderAttentionHeads;
        q_proj = new Projection(c.DModel, c.DModel, true, dtype, device);
        k_proj = new Projection(c.DModel, c.DModel, false, dtype, device);
        v_proj = new Projection(c.DModel, c.DModel, true, dtype, device);
        out_proj = new Projection(c.DModel, c.DModel, true, dtype, device);
        RegisterComponents();
    }

    /// <summary>x (N,T,D); keyMask (N,1,T,T) bool, true = may attend.</summary>
    public Tensor Forward(Tensor x, Tensor keyMask)
    {
        long n = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(n, t, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(n, t, _heads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(n, t, _heads, _headDim).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(q, k, v, keyMask);
        return out_proj.forward(o.transpose(1, 2).reshape(n, t, (long)_heads * _headDim));
    }
}

/// <summary>Pre-LN Whisper encoder layer.</summary>
public sealed class WhisperEncoderLayer : nn.Module
{
    private readonly WhisperAttention self_attn;
    private readonly LayerNormModule self_attn_layer_norm;
    private readonly Projection fc1, fc2;
    private readonly LayerNormModule final_layer_norm;

    public WhisperEncoderLayer(AudioEncoderConfig c, ScalarType dtype, Device device) : base("encoder_layer")
    {
        self_attn = new WhisperAttention(c, dtype, device);
        self_attn_layer_norm = new LayerNormModule(c.DModel, dtype, device);
        fc1 = new Projection(c.DModel, c.EncoderFfnDim, true, dtype, device);
        fc2 = new Projection(c.EncoderFfnDim, c.DModel, true, dtype, device);
        final_layer_norm = new LayerNormModule(c.DModel, dtype, device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor keyMask)
    {
        var h = x.Plus(self_attn.Forward(self_attn_layer_norm.forward(x), keyMask));
        return h.Plus(fc2.forward(nn.functional.gelu(fc1.forward(final_layer_norm.forward(h)))));
    }
}

/// <summary>
/// The Whisper-style audio tower (HiggsAudioEncoder): two GELU convolutions, learned positions, pre-LN layers with
/// padded frames masked as keys, 2× average pooling and a final LayerNorm. Output frame rate is a quarter of the mel rate.
/// </summary>
public sealed class AudioTower : nn.Module
{
    private readonly Conv1dModule conv1, conv2;
    private readonly EmbeddingTable embed_positions;
    private readonly TorchSharp.Modules.ModuleList<WhisperEncoderLayer> layers;
    private readonly LayerNormModule layer_norm;
    private readonly AudioEncoderConfig _cfg;

    public AudioTower(AudioEncoderConfig c, ScalarType dtype, Device device) : base("audio_tower")
    {
        _cfg = c;
        conv1 = new Conv1dModule(c.NumMelBins, c.DModel, 3, 1, 1, dtype, device);
        conv2 = new Conv1dModule(c.DModel, c.DModel, 3, 2, 1, dtype, device);
        embed_positions = new EmbeddingTable(c.MaxSourcePositions, c.DModel, dtype, device);
        layers = nn.ModuleList(Enumerable.Range(0, c.EncoderLayers).Select(_ => new WhisperEncoderLayer(c, dtype, device)).ToArray());
        layer_norm = new LayerNormModule(c.DModel, dtype, device);
        RegisterComponents();
        embed_positions.Weight.requires_grad = false;
    }

    public int ExpectedMelFrames => _cfg.MaxSourcePositions * 2;

    /// <summary>Valid output frames per clip from the number of valid mel frames.</summary>
    public static Tensor OutputLengths(Tensor melLengths)
    {
        var a = melLengths.Minus(1).Over(2, RoundingMode.floor).Plus(1);
        return a.Minus(2).Over(2, RoundingMode.floor).Plus(1);
    }

    /// <summary>features (N, mel, 2·max_source_positions); melMask (N, frames) → (N, max_source_positions/2, D).</summary>
    public Tensor Forward(Tensor features, Tensor melMask)
    {
        if (features.shape[^1] != ExpectedMelFrames)
            throw new InvalidDataException($"audio_features has {features.shape[^1]} mel frames, the audio tower expects {ExpectedMelFrames}");
        var x = features.to_type(embed_positions.Weight.dtype);
        x = nn.functional.gelu(conv1.forward(x));
        x = nn.functional.gelu(conv2.forward(x));
        x = x.permute(0, 2, 1).Plus(embed_positions.Weight);
        long n = x.shape[0], t = x.shape[1];
        var convLen = melMask.to_type(ScalarType.Int64).sum(dim: -1).Minus(1).Over(2, RoundingMode.floor).Plus(1);
        var valid = HeldScalars.Arange(t, device: x.device).unsqueeze(0) < convLen.unsqueeze(1);     // (N,T)
        var keyMask = valid.view(n, 1, 1, t).expand(n, 1, t, t);
        foreach (var layer in layers) x = layer.Forward(x, keyMask);
        x = nn.functional.avg_pool1d(x.permute(0, 2, 1), 2, 2).permute(0, 2, 1);
        return layer_norm.forward(x);
    }
}

/// <summary>audio_encoder_proj: a single Linear named <c>linear</c>.</summary>
public sealed class AudioFeatureProjector : nn.Module<Tensor, Tensor>
{
    private readonly Projection linear;

    public AudioFeatureProjector(long inDim, long outDim, ScalarType dtype, Device device) : base("audio_encoder_proj")
    {
        linear = new Projection(inDim, outDim, true, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => linear.forward(x);
}
