using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// transformers' HubertModel for the HuBERT-base family in eval mode without masks (the tokenizer's semantic teacher):
/// group-norm conv feature extractor, layer-normed feature projection, weight-normed positional conv, post-LN encoder.
/// Reads weights under <c>semantic_model.</c> of a <see cref="TokenizerWeights"/>.
/// </summary>
public static class HubertForward
{
    private const string P = "semantic_model.";

    /// <summary>Frames produced for <paramref name="samples"/> 16 kHz samples, or -1 when a conv would get fewer samples than its kernel.</summary>
    public static long FrameCount(HubertSizes h, long samples)
    {
        long l = samples;
        for (int i = 0; i < h.ConvKernel.Length; i++)
        {
            if (l < h.ConvKernel[i]) return -1;
            l = (l - h.ConvKernel[i]) / h.ConvStride[i] + 1;
        }
        return l;
    }

    /// <summary>All hidden states (the pre-layer one after the encoder LayerNorm, then one per layer): (layers+1, B, H, hidden).</summary>
    public static Tensor HiddenStates(TokenizerWeights w, Tensor wave16k)
    {
        var h = w.Sizes.Hubert;
        if (wave16k.dim() != 2) throw new ArgumentException("HuBERT input must be (batch, samples)");
        if (FrameCount(h, wave16k.shape[1]) < 1)
            throw new ArgumentException($"HuBERT input of {wave16k.shape[1]} samples is shorter than its receptive field");
        var x = wave16k.unsqueeze(1);
        for (int i = 0; i < h.ConvDim.Length; i++)
        {
            // free each layer's input and temporaries at once: the first layers' outputs are the largest tensors here
            using var scope = NewDisposeScope();
            var y = CpuConv.Conv1d(x, w[$"{P}feature_extractor.conv_layers.{i}.conv.weight"], null, stride: h.ConvStride[i]);
            if (i == 0)
                y = F.group_norm(y, h.ConvDim[0], w[$"{P}feature_extractor.conv_layers.0.layer_norm.weight"],
                    w[$"{P}feature_extractor.conv_layers.0.layer_norm.bias"], 1e-5);
            y = F.gelu(y).MoveToOuterDisposeScope();
            x.Dispose(); // the previous layer's output (first: our view of the input, whose storage stays alive)
            x = y;
        }
        var feats = x.transpose(1, 2);
        feats = F.layer_norm(feats, [h.ConvDim[^1]], w[$"{P}feature_projection.layer_norm.weight"],
            w[$"{P}feature_projection.layer_norm.bias"], h.LayerNormEps);
        var hs = CpuConv.Linear(feats, w[$"{P}feature_projection.projection.weight"], w[$"{P}feature_projection.projection.bias"]);

        var pos = CpuConv.Conv1d(hs.transpose(1, 2), w[$"{P}encoder.pos_conv_embed.conv.weight"], w[$"{P}encoder.pos_conv_embed.conv.bias"],
            padding: h.PosConvKernel / 2, groups: h.PosConvGroups);
        // an even kernel with padding k/2 yields one extra frame: drop the last one (transformers' same-pad layer)
        if (h.PosConvKernel % 2 == 0) pos = pos[.., .., ..^1];
        pos = F.gelu(pos).transpose(1, 2);
        hs = F.layer_norm(hs.Plus(pos), [h.Hidden], w[$"{P}encoder.layer_norm.weight"], w[$"{P}encoder.layer_norm.bias"], h.LayerNormEps);
        var all = new List<Tensor> { hs };
        for (int l = 0; l < h.Layers; l++)
        {
            hs = Layer(w, h, l, hs);
            all.Add(hs);
        }
        return stack(all, 0);
    }

    private static Tensor Layer(TokenizerWeights w, HubertSizes h, int l, Tensor x)
    {
        using var scope = NewDisposeScope();
        var p = $"{P}encoder.layers.{l}.";
        long b = x.shape[0], t = x.shape[1];
        int heads = h.Heads, hd = h.Hidden / h.Heads;
        var scaling = Math.Pow(hd, -0.5);
        var q = CpuConv.Linear(x, w[p + "attention.q_proj.weight"], w[p + "attention.q_proj.bias"]).Times(scaling);
        var k = CpuConv.Linear(x, w[p + "attention.k_proj.weight"], w[p + "attention.k_proj.bias"]);
        var v = CpuConv.Linear(x, w[p + "attention.v_proj.weight"], w[p + "attention.v_proj.bias"]);
        q = q.view(b, t, heads, hd).transpose(1, 2);
        k = k.view(b, t, heads, hd).transpose(1, 2);
        v = v.view(b, t, heads, hd).transpose(1, 2);
        var attn = q.matmul(k.transpose(-1, -2)).softmax(-1);
        var ctx = attn.matmul(v).transpose(1, 2).reshape(b, t, h.Hidden);
        var a = CpuConv.Linear(ctx, w[p + "attention.out_proj.weight"], w[p + "attention.out_proj.bias"]);
        x = F.layer_norm(x.Plus(a), [h.Hidden], w[p + "layer_norm.weight"], w[p + "layer_norm.bias"], h.LayerNormEps);
        var ff = F.gelu(CpuConv.Linear(x, w[p + "feed_forward.intermediate_dense.weight"], w[p + "feed_forward.intermediate_dense.bias"]));
        ff = CpuConv.Linear(ff, w[p + "feed_forward.output_dense.weight"], w[p + "feed_forward.output_dense.bias"]);
        return F.layer_norm(x.Plus(ff), [h.Hidden], w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"], h.LayerNormEps)
            .MoveToOuterDisposeScope();
    }
}
