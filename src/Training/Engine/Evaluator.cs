using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>Validation losses, token-weighted over the whole set: text, per codebook, audio = mean of the codebooks.</summary>
public sealed record ValidationResult(long Step, double Loss, double TextLoss, double AudioLoss, double[] CodebookLosses, long TextTokens, long AudioFrames, int Samples);

public static class Evaluator
{
    public static ValidationResult Run(HiggsAudioModel model, SampleStore store, IReadOnlyList<long> ids, int batchSize, LossOptions lossOptions, long step)
    {
        int k = model.Config.AudioNumCodebooks;
        double textSum = 0; long textTok = 0;
        var cbSum = new double[k]; var cbTok = new long[k];
        bool wasTraining = model.training;
        model.eval();
        try
        {
            for (int i = 0; i < ids.Count; i += batchSize)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var chunk = ids.Skip(i).Take(batchSize).ToList();
                var batch = store.Collate(chunk);
                var o = model.Forward(batch);
                var l = HiggsLoss.Compute(o.Logits, o.ExpandedLabels, o.AudioLogits, TrainingEngine.AudioLabels(batch), lossOptions);
                textSum += l.TextLoss.item<float>() * l.TextTokens; textTok += l.TextTokens;
                var cb = l.CodebookLosses.cpu().data<float>().ToArray();
                for (int c = 0; c < k; c++) { cbSum[c] += cb[c] * l.AudioTokens[c]; cbTok[c] += l.AudioTokens[c]; }
            }
        }
        finally { if (wasTraining) model.train(); }
        // a term with no scored target is NaN in the result (null in metrics) and left out of the total
        var cbl = cbSum.Select((s, c) => cbTok[c] > 0 ? s / cbTok[c] : double.NaN).ToArray();
        double text = textTok > 0 ? textSum / textTok : double.NaN;
        var scored = cbl.Select((x, c) => (x, c)).Where(t => double.IsFinite(t.x)).ToList();
        double audio = scored.Count == 0 ? double.NaN : lossOptions.Reduction switch
        {
            CodebookReduction.Sum => scored.Sum(t => t.x),
            CodebookReduction.Weighted => scored.Sum(t => t.x * lossOptions.CodebookWeights![t.c]),
            _ => scored.Average(t => t.x),
        };
        double total = (double.IsFinite(text) ? text * lossOptions.TextWeight : 0) + (double.IsFinite(audio) ? audio * lossOptions.AudioWeight : 0);
        return new ValidationResult(step, total, text, audio, cbl, textTok, cbTok.Length > 0 ? cbTok.Max() : 0, ids.Count);
    }
}
