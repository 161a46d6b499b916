using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class LossAndLearningTests
{
    [Fact]
    public void Loss_pairs_position_t_with_label_t_plus_1_and_reduces_codebooks()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var logits = randn(new long[] { 2, 5, 6 }, generator: g);
        var labels = tensor(new long[] { -100, 3, 1, -100, 4, -100, -100, 0, 5, 2 }).view(2, 5);
        var audio = randn(new long[] { 4, 2, 3 }, generator: g);
        var labelAudio = tensor(new long[] { -100, 1, 2, 0, -100, -100, 2, 1 }).view(2, 4);

        double Nll(Tensor row, long target) => -nn.functional.log_softmax(row, 0)[target].item<float>();
        // Text: targets at t+1 for t = 0..3.
        double textSum = 0; int textN = 0;
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 4; t++)
            {
                long y = labels[b, t + 1].item<long>();
                if (y == -100) continue;
                textSum += Nll(logits[b, t], y); textN++;
            }
        var cb = new double[2];
        for (int c = 0; c < 2; c++)
        {
            double s = 0; int n = 0;
            for (int r = 0; r < 3; r++)
            {
                long y = labelAudio[c, r + 1].item<long>();
                if (y == -100) continue;
                s += Nll(audio[r, c], y); n++;
            }
            cb[c] = s / n;
        }
        var mean = HiggsLoss.Compute(logits, labels, audio, labelAudio);
        Assert.Equal(textSum / textN, mean.TextLoss.item<float>(), 5);
        Assert.Equal(cb[0], mean.CodebookLosses[0].item<float>(), 5);
        Assert.Equal(cb[1], mean.CodebookLosses[1].item<float>(), 5);
        Assert.Equal((cb[0] + cb[1]) / 2, mean.AudioLoss.item<float>(), 5);
        Assert.Equal(textN, mean.TextTokens);
        Assert.Equal(new long[] { 3, 2 }, mean.AudioTokens);

        var sum = HiggsLoss.Compute(logits, labels, audio, labelAudio, new LossOptions { Reduction = CodebookReduction.Sum, TextWeight = 0.5, AudioWeight = 2 });
        Assert.Equal(cb[0] + cb[1], sum.AudioLoss.item<float>(), 5);
        Assert.Equal(0.5 * textSum / textN + 2 * (cb[0] + cb[1]), sum.Loss.item<float>(), 4);
        var weighted = HiggsLoss.Compute(logits, labels, audio, labelAudio, new LossOptions { Reduction = CodebookReduction.Weighted, CodebookWeights = new[] { 1.0, 0.0 } });
        Assert.Equal(cb[0], weighted.AudioLoss.item<float>(), 5);
        Assert.Throws<ArgumentException>(() => HiggsLoss.Compute(logits, labels, audio, labelAudio, new LossOptions { Reduction = CodebookReduction.Weighted }));
    }

    /// <summary>
    /// Overfits a tiny model (all weights trainable) on two samples. Every target in this data differs from the token at the
    /// same position, so an unshifted (copy-task) loss could not make the model predict the targets checked here.
    /// </summary>
    [Fact]
    public void Tiny_model_learns_to_predict_the_next_text_token_and_audio_column()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var cfg = TinyModels.V2Like(codebooks: 2);
        var model = TinyModels.Random(cfg, seed: 11);
        var batch = TinyModels.TwoSamples(cfg);
        var opt = optim.AdamW(model.parameters(), 1e-2, 0.9, 0.95, 1e-8, 0.0);
        model.train();
        double text0 = 0, audio0 = 0, text1 = 0, audio1 = 0;
        for (int step = 0; step < 120; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var r = model.Forward(batch);
            var loss = HiggsLoss.Compute(r.Logits, r.ExpandedLabels, r.AudioLogits, batch.LabelAudioIds);
            if (step == 0) { text0 = loss.TextLoss.item<float>(); audio0 = loss.AudioLoss.item<float>(); }
            text1 = loss.TextLoss.item<float>(); audio1 = loss.AudioLoss.item<float>();
            loss.Loss.backward();
            opt.step();
        }
        Assert.True(text1 <= 0.1 * text0, $"text loss {text0} -> {text1}");
        Assert.True(audio1 <= 0.1 * audio0, $"audio loss {audio0} -> {audio1}");

        model.eval();
        using var _ = no_grad();
        var o = model.Forward(batch);
        var labels = o.ExpandedLabels!;
        var ids = o.ExpandedInputIds;
        var pred = o.Logits.argmax(-1);
        int checkedText = 0;
        for (long b = 0; b < labels.shape[0]; b++)
            for (long t = 0; t + 1 < labels.shape[1]; t++)
            {
                long y = labels[b, t + 1].item<long>();
                if (y == -100) continue;
                Assert.NotEqual(ids[b, t].item<long>(), y);   // data sanity: the target is not the current token
                Assert.Equal(y, pred[b, t].item<long>());
                checkedText++;
            }
        Assert.True(checkedText >= 15);
        var apred = o.AudioLogits.argmax(-1);       // (N, K)
        var la = batch.LabelAudioIds!;
        var ain = batch.AudioOutIds!;
        int checkedAudio = 0;
        for (long n = 0; n + 1 < la.shape[1]; n++)
            for (long c = 0; c < la.shape[0]; c++)
            {
                long y = la[c, n + 1].item<long>();
                if (y == -100) continue;
                Assert.NotEqual(ain[c, n].item<long>(), y);
                Assert.Equal(y, apred[n, c].item<long>());
                checkedAudio++;
            }
        Assert.True(checkedAudio >= 20);
    }
}
