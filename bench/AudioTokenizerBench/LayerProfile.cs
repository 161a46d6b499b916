using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Bench.AudioTokenizer;

/// <summary>Per-op thread CPU times of one encode (best of several passes), with GFLOP/s for every conv.</summary>
public sealed class LayerProfile
{
    private readonly Dictionary<string, (double Best, double Flops)> _rows = new();
    private readonly List<string> _order = new();
    private readonly bool _first;

    private LayerProfile(bool first) => _first = first;

    private Tensor Time(string name, double flops, Func<Tensor> f)
    {
        double c0 = ThreadClock.Seconds();
        var y = f();
        double t = ThreadClock.Seconds() - c0;
        if (!_rows.TryGetValue(name, out var row)) { _order.Add(name); _rows[name] = (t, flops); }
        else if (t < row.Best) _rows[name] = (t, flops);
        return y;
    }

    private Tensor Conv(string name, Tensor x, Tensor w, Tensor? b, long stride = 1, long padding = 0, long dilation = 1, long groups = 1)
    {
        var y = Time(name, 0, () => F.conv1d(x, w, b, stride, padding, dilation, groups));
        double flops = 2.0 * y.shape[0] * y.shape[1] * y.shape[2] * w.shape[1] * w.shape[2];
        _rows[name] = (_rows[name].Best, flops);
        return y;
    }

    public static void Run(HiggsAudioTokenizer tok, float[] wave, int passes)
    {
        var p = new LayerProfile(true);
        for (int i = 0; i < passes; i++)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            p.Pass(tok, tensor(wave).unsqueeze(0));
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
        var latent = Time("rvq fc_prior", 0, () => F.linear(e.transpose(1, 2), w["fc_prior.weight"], w["fc_prior.bias"]));
        Time("rvq encode", 0, () => ResidualVq.Encode(w, latent.reshape(t, s.QuantizerDim)).Codes);
    }
}
