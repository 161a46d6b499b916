using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Bench.AudioTokenizer;

/// <summary>
/// Per-op thread CPU times of one encode (best of several passes), with GFLOP/s for every conv, through the port's conv
/// paths (<see cref="CpuConv"/>; with <c>libtorch</c> through plain conv1d/linear instead).
/// </summary>
public sealed class LayerProfile
{
    private readonly Dictionary<string, (double Best, double Flops)> _rows = new();
    private readonly List<string> _order = new();

    private readonly Dictionary<string, (double Time, double Flops)> _pass = new();

    private Tensor Time(string name, double flops, Func<Tensor> f)
    {
        double c0 = ThreadClock.Seconds();
        var y = f();
        Accumulate(name, ThreadClock.Seconds() - c0, flops);
        return y;
    }

    private void Accumulate(string name, double t, double flops)
    {
        var cur = _pass.TryGetValue(name, out var c) ? c : (0, 0);
        _pass[name] = (cur.Time + t, cur.Flops + flops);
        if (!_order.Contains(name)) _order.Add(name);
    }

    private void EndPass()
    {
        foreach (var (name, (t, fl)) in _pass)
            if (!_rows.TryGetValue(name, out var row) || t < row.Best) _rows[name] = (t, fl);
        _pass.Clear();
    }

    private Tensor Conv(string name, Tensor x, Tensor w, Tensor? b, long stride = 1, long padding = 0, long dilation = 1, long groups = 1)
    {
        double c0 = ThreadClock.Seconds();
        var y = CpuConv.Conv1d(x, w, b, stride, padding, dilation, groups);
        Accumulate(name, ThreadClock.Seconds() - c0, 2.0 * y.shape[0] * y.shape[1] * y.shape[2] * w.shape[1] * w.shape[2]);
        return y;
    }

    public static void Run(HiggsAudioTokenizer tok, float[] wave, int passes, bool libtorchDefaults)
    {
        CpuConv.LibtorchDefaults = libtorchDefaults;
        var p = new LayerProfile();
        for (int i = 0; i < passes; i++)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            p.Pass(tok, tensor(wave).unsqueeze(0));
            p.EndPass();
        }
        double total = p._order.Where(n => !n.StartsWith("info")).Sum(n => p._rows[n].Best);
        Console.WriteLine($"{"op",-44} {"cpu ms",8} {"GFLOP/s",8} {"share",6}");
        foreach (var n in p._order)
        {
            var (t, fl) = p._rows[n];
            Console.WriteLine($"{n,-44} {t * 1000,8:F2} {(fl > 0 ? (fl / t / 1e9).ToString("F1") : "-"),8} {t / total * 100,5:F1}%");
        }
        foreach (var g in p._order.GroupBy(n => n.Split(' ')[0]))
            Console.WriteLine($"total {g.Key}: {g.Sum(n => p._rows[n].Best) * 1000:F1} ms");
        Console.WriteLine($"total: {total * 1000:F1} ms");
    }

    private void Pass(HiggsAudioTokenizer tok, Tensor x)
    {
        var w = tok.Weights;
        var s = tok.Sizes;
        var x16 = Time("prep resample", 0, () => tok.Resample24kTo16k(x));
        var h = Time("prep pad", 0, () => F.pad(x16, [TokenizerSizes.SemanticEdgePad, TokenizerSizes.SemanticEdgePad])).unsqueeze(1);
        const string P = "semantic_model.";
        var hs = s.Hubert;
        for (int i = 0; i < hs.ConvDim.Length; i++)
        {
            h = Conv($"hubert conv{i} k{hs.ConvKernel[i]} s{hs.ConvStride[i]}", h, w[$"{P}feature_extractor.conv_layers.{i}.conv.weight"], null, stride: hs.ConvStride[i]);
            if (i == 0)
                h = Time("hubert groupnorm", 0, () => F.group_norm(h, hs.ConvDim[0], w[$"{P}feature_extractor.conv_layers.0.layer_norm.weight"],
                    w[$"{P}feature_extractor.conv_layers.0.layer_norm.bias"], 1e-5));
            h = Time($"hubert gelu{i}", 0, () => F.gelu(h));
        }
        var padded = F.pad(x16, [TokenizerSizes.SemanticEdgePad, TokenizerSizes.SemanticEdgePad]);
        var all = Time("info hubert-full-forward", 0, () => HubertForward.HiddenStates(w, padded));
        HubertTransformer(w, hs, h);
        var features = all.mean([0L])[.., TensorIndex.Slice(null, null, s.SemanticDownsampleFactor), ..];
        var sem = Time("semantic encoder", 0, () => SemanticEncoder.Forward(w, features.transpose(1, 2)));

        var a = x.unsqueeze(1);
        var r = s.Ratios;
        a = Conv("dac block0 1->64 k7", a, w["encoder.block.0.weight"], w["encoder.block.0.bias"], padding: 3);
        for (int i = 0; i < r.Length; i++)
        {
            var pre = $"encoder.block.{i + 1}.block";
            long c = a.shape[1];
            foreach (var (u, d) in new[] { (0, 1), (1, 3), (2, 9) })
            {
                var up = $"{pre}.{u}";
                var y = Time($"dac snake c{c}", 0, () => DacCodec.Snake(a, w[up + ".block.0.alpha"]));
                y = Conv($"dac {c}->{c} k7 d{d} T{a.shape[2]}", y, w[up + ".block.1.weight"], w[up + ".block.1.bias"], dilation: d, padding: 3 * d);
                y = Time($"dac snake c{c}", 0, () => DacCodec.Snake(y, w[up + ".block.2.alpha"]));
                y = Conv($"dac {c}->{c} k1 T{a.shape[2]} u{u}", y, w[up + ".block.3.weight"], w[up + ".block.3.bias"]);
                a = Time($"dac add c{c}", 0, () => a + y);
            }
            a = Time($"dac snake c{c}", 0, () => DacCodec.Snake(a, w[$"{pre}.3.alpha"]));
            a = Conv($"dac {c}->{2 * c} k{2 * r[i]} s{r[i]}", a, w[$"{pre}.4.weight"], w[$"{pre}.4.bias"], stride: r[i], padding: (r[i] + 1) / 2);
        }
        a = Time("dac snake final", 0, () => DacCodec.Snake(a, w[$"encoder.block.{r.Length + 1}.alpha"]));
        a = Conv("dac final k3", a, w[$"encoder.block.{r.Length + 2}.weight"], w[$"encoder.block.{r.Length + 2}.bias"], padding: 1);
        long t = Math.Min(a.shape[2], sem.shape[2]);
        var e = cat([a[.., .., ..(int)t], sem[.., .., ..(int)t]], 1);
        var latent = Time("rvq fc_prior", 0, () => CpuConv.Linear(e.transpose(1, 2), w["fc_prior.weight"], w["fc_prior.bias"]));
        Time("rvq encode", 0, () => ResidualVq.Encode(w, latent.reshape(t, s.QuantizerDim)).Codes);
    }

    // the encoder part of HubertForward, op by op (same ops; the hidden states it returns are the ones above)
    private void HubertTransformer(TokenizerWeights w, HubertSizes hs, Tensor convOut)
    {
        const string P = "semantic_model.";
        long t = convOut.shape[2];
        var feats = convOut.transpose(1, 2);
        feats = Time("hubert feature layernorm", 0, () => F.layer_norm(feats, [hs.ConvDim[^1]], w[$"{P}feature_projection.layer_norm.weight"],
            w[$"{P}feature_projection.layer_norm.bias"], hs.LayerNormEps));
        var x = Lin("hubert feature projection", feats, $"{P}feature_projection.projection", w);
        var pos = Conv("hubert pos conv g16", x.transpose(1, 2), w[$"{P}encoder.pos_conv_embed.conv.weight"], w[$"{P}encoder.pos_conv_embed.conv.bias"],
            padding: hs.PosConvKernel / 2, groups: hs.PosConvGroups);
        pos = pos[.., .., ..(int)t];
        x = Time("hubert norm/gelu/add", 0, () => F.layer_norm(x + F.gelu(pos).transpose(1, 2), [hs.Hidden], w[$"{P}encoder.layer_norm.weight"], w[$"{P}encoder.layer_norm.bias"], hs.LayerNormEps));
        int heads = hs.Heads, hd = hs.Hidden / hs.Heads;
        for (int l = 0; l < hs.Layers; l++)
        {
            var p = $"{P}encoder.layers.{l}.";
            var xin = x;
            var q = Lin("hubert q/k/v/out", xin, p + "attention.q_proj", w);
            var k = Lin("hubert q/k/v/out", xin, p + "attention.k_proj", w);
            var v = Lin("hubert q/k/v/out", xin, p + "attention.v_proj", w);
            var ctx = Time("hubert attention core", 0, () =>
            {
                var qh = (q * Math.Pow(hd, -0.5)).view(1, t, heads, hd).transpose(1, 2);
                var kh = k.view(1, t, heads, hd).transpose(1, 2);
                var vh = v.view(1, t, heads, hd).transpose(1, 2);
                return qh.matmul(kh.transpose(-1, -2)).softmax(-1).matmul(vh).transpose(1, 2).reshape(1, t, hs.Hidden);
            });
            var a = Lin("hubert q/k/v/out", ctx, p + "attention.out_proj", w);
            x = Time("hubert norm/gelu/add", 0, () => F.layer_norm(xin + a, [hs.Hidden], w[p + "layer_norm.weight"], w[p + "layer_norm.bias"], hs.LayerNormEps));
            var ff = Lin("hubert ff up", x, p + "feed_forward.intermediate_dense", w);
            ff = Time("hubert norm/gelu/add", 0, () => F.gelu(ff));
            ff = Lin("hubert ff down", ff, p + "feed_forward.output_dense", w);
            var x2 = x;
            x = Time("hubert norm/gelu/add", 0, () => F.layer_norm(x2 + ff, [hs.Hidden], w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"], hs.LayerNormEps));
        }
    }

    // rows with the same name add up within a pass (best pass kept)
    private Tensor Lin(string name, Tensor x, string prefix, TokenizerWeights w)
    {
        var wt = w[prefix + ".weight"];
        double c0 = ThreadClock.Seconds();
        var y = CpuConv.Linear(x, wt, w[prefix + ".bias"]);
        Accumulate(name, ThreadClock.Seconds() - c0, 2.0 * x.shape[0] * x.shape[1] * wt.shape[0] * wt.shape[1]);
        return y;
    }
}
