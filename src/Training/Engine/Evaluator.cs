using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>Validation losses, token-weighted over the whole set: text, per codebook, audio = mean of the codebooks.</summary>
public sealed record ValidationResult(long Step, double Loss, double TextLoss, double AudioLoss, double[] CodebookLosses, long TextTokens, long AudioFrames, int Samples);

public static class Evaluator
{
    /// <summary>
    /// Whether a validation loss is the best so far. A NaN or Inf loss never is (a first validation of a diverged adapter
    /// would otherwise be kept and pruning would spare it); a non-finite best on record (written before this rule) is
    /// beaten by any finite loss.
    /// </summary>
    public static bool IsBest(double loss, double? bestSoFar) =>
        double.IsFinite(loss) && (bestSoFar is not { } b || !double.IsFinite(b) || loss < b);

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
                // a batch without targets for a term has a NaN loss for it by convention: only scored terms are summed,
                // so the NaN that remains in a sum is a real one
                if (l.TextTokens > 0) { textSum += l.TextLoss.item<float>() * l.TextTokens; textTok += l.TextTokens; }
                var cb = l.CodebookLosses.cpu().data<float>().ToArray();
                for (int c = 0; c < k; c++)
                    if (l.AudioTokens[c] > 0) { cbSum[c] += cb[c] * l.AudioTokens[c]; cbTok[c] += l.AudioTokens[c]; }
            }
        }
        finally { if (wasTraining) model.train(); }
        // a term with no scored target is NaN in the result (null in metrics) and left out of the total; a term that was
        // scored and came out NaN or Inf (a diverged adapter) is kept, so the total is NaN too and never reads as 0
        var cbl = cbSum.Select((s, c) => cbTok[c] > 0 ? s / cbTok[c] : double.NaN).ToArray();
        double text = textTok > 0 ? textSum / textTok : double.NaN;
        var scored = cbl.Select((x, c) => (x, c)).Where(t => cbTok[t.c] > 0).ToList();
        double audio = scored.Count == 0 ? double.NaN : lossOptions.Reduction switch
        {
            CodebookReduction.Sum => scored.Sum(t => t.x),
            CodebookReduction.Weighted => scored.Sum(t => t.x * lossOptions.CodebookWeights![t.c]),
            _ => scored.Average(t => t.x),
        };
        double total = (textTok > 0 ? text * lossOptions.TextWeight : 0) + (scored.Count > 0 ? audio * lossOptions.AudioWeight : 0);
        return new ValidationResult(step, total, text, audio, cbl, textTok, cbTok.Length > 0 ? cbTok.Max() : 0, ids.Count);
    }
}
