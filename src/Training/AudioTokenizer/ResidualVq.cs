using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The tokenizer's residual VQ in eval mode (<c>quantizer.vq.layers.N.</c>).</summary>
public static class ResidualVq
{
    private static Tensor ProjectIn(TokenizerWeights w, int q, Tensor x)
    {
        var p = $"quantizer.vq.layers.{q}.project_in";
        return w.Has(p + ".weight") ? F.linear(x, w[p + ".weight"], w[p + ".bias"]) : x;
    }

    private static Tensor ProjectOut(TokenizerWeights w, int q, Tensor x)
    {
        var p = $"quantizer.vq.layers.{q}.project_out";
        return w.Has(p + ".weight") ? F.linear(x, w[p + ".weight"], w[p + ".bias"]) : x;
    }

    /// <summary>
    /// (M, quantizer_dim) → codes (n_q, M) and margins (n_q, M): nearest entry in plain squared Euclidean distance
    /// (lowest index on ties), residual updated after project_out. The margin is the gap to the second-best entry.
    /// </summary>
    public static (Tensor Codes, Tensor Margins) Encode(TokenizerWeights w, Tensor latent)
    {
        var s = w.Sizes;
        var residual = latent;
        var codes = new List<Tensor>();
        var margins = new List<Tensor>();
        for (int q = 0; q < s.NQ; q++)
        {
            var z = ProjectIn(w, q, residual);
            var embed = w[$"quantizer.vq.layers.{q}._codebook.embed"];
            var embedT = embed.t();
            // same expression as upstream, so near-ties resolve the same way in float32
            var dist = -((z.pow(HeldScalars.Two).sum(1, keepdim: true) - z.matmul(embedT).Times(2)).Plus(embedT.pow(HeldScalars.Two).sum(0, keepdim: true)));
            var idx = dist.argmax(1);
            var top2 = dist.topk(Math.Min(2, s.Bins), 1).values;
            margins.Add(s.Bins > 1 ? top2[.., 0] - top2[.., 1] : zeros_like(idx, ScalarType.Float32));
            codes.Add(idx);
            var quantized = ProjectOut(w, q, embed.index_select(0, idx));
            residual = residual - quantized;
        }
        return (stack(codes, 0), stack(margins, 0));
    }

    /// <summary>codes (n_q, M) → (M, quantizer_dim): the sum over codebooks of project_out(embed[code]).</summary>
    public static Tensor Decode(TokenizerWeights w, Tensor codes)
    {
        var s = w.Sizes;
        if (codes.shape[0] != s.NQ) throw new ArgumentException($"codes have {codes.shape[0]} codebooks, the tokenizer has {s.NQ}");
        if (codes.NumberOfElements > 0)
        {
            long lo = codes.min().item<long>(), hi = codes.max().item<long>();
            if (lo < 0 || hi >= s.Bins) throw new ArgumentException($"codes must lie in 0..{s.Bins - 1} (found {lo}..{hi})");
        }
        Tensor? sum = null;
        for (int q = 0; q < s.NQ; q++)
        {
            var v = ProjectOut(w, q, w[$"quantizer.vq.layers.{q}._codebook.embed"].index_select(0, codes[q]));
            sum = sum is null ? v : sum.Plus(v);
        }
        return sum!;
    }
}
