using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// What one rank's micro-batches contributed to a global step. Gradients on the LoRA parameters hold
/// Σ_i w_i ∇L_i (w_i = 1 for <see cref="LossNormalisation.Mean"/>, the micro-batch's scored tokens for
/// <see cref="LossNormalisation.Tokens"/>) and <see cref="Weight"/> = Σ_i w_i. Ranks sum both (an all-reduce SUM of the
/// gradients and <see cref="Add"/> of these records) before <see cref="TrainingEngine.ApplyGradients"/> divides.
/// </summary>
public sealed record GradientResult(double Weight, double WeightedLoss, double TextLossSum, long TextTokens,
    double[] CodebookLossSums, long[] CodebookTokens, long Positions, int MicroBatches, bool Finite)
{
    public GradientResult Add(GradientResult o) => new(Weight + o.Weight, WeightedLoss + o.WeightedLoss, TextLossSum + o.TextLossSum,
        TextTokens + o.TextTokens, CodebookLossSums.Zip(o.CodebookLossSums, (a, b) => a + b).ToArray(),
        CodebookTokens.Zip(o.CodebookTokens, (a, b) => a + b).ToArray(), Positions + o.Positions, MicroBatches + o.MicroBatches, Finite && o.Finite);

    /// <summary>The step's loss under the chosen normalisation.</summary>
    public double Loss => Weight > 0 ? WeightedLoss / Weight : 0;
    public double TextLoss => TextTokens > 0 ? TextLossSum / TextTokens : double.NaN;
    public double[] CodebookLosses => CodebookLossSums.Select((s, c) => CodebookTokens[c] > 0 ? s / CodebookTokens[c] : double.NaN).ToArray();
    /// <summary>Mean of the codebooks that had targets; NaN (logged as null) when no audio was scored.</summary>
    public double AudioLoss => CodebookLosses.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
}

public sealed record ApplyResult(bool Applied, double GradNorm, double Lr, int NonFiniteInARow, string? SkipReason);

public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// The two halves of an optimizer step, kept apart so a cluster worker can all-reduce in between:
/// <see cref="ComputeGradients"/> (forward + backward of this rank's micro-batches) and <see cref="ApplyGradients"/>
/// (normalise, NaN watchdog, clip, AdamW, schedule). Callers wrap each step in a DisposeScope.
/// </summary>
public sealed class TrainingEngine
{
    public HiggsAudioModel Model { get; }
    public LoraAdapter Adapter { get; }
    public LoraAdamW Optimizer { get; }
    public LrSchedule Schedule { get; }
    public double BaseLr { get; }
    public double? MaxGradNorm { get; }
    public LossNormalisation Normalisation { get; }
    public LossOptions LossOptions { get; }
    public int NanPatience { get; }
    public int NonFiniteInARow { get; set; }

    public TrainingEngine(HiggsAudioModel model, LoraAdapter adapter, LoraAdamW optimizer, LrSchedule schedule, double baseLr,
        double? maxGradNorm, LossNormalisation normalisation, LossOptions lossOptions, int nanPatience)
    {
        Model = model; Adapter = adapter; Optimizer = optimizer; Schedule = schedule; BaseLr = baseLr;
        MaxGradNorm = maxGradNorm is > 0 ? maxGradNorm : null; Normalisation = normalisation; LossOptions = lossOptions; NanPatience = nanPatience;
    }

    public static TrainingEngine Create(HiggsAudioModel model, LoraAdapter adapter, TrainOptions o, long totalSteps) =>
        new(model, adapter, new LoraAdamW(adapter.NamedParameters(), o.Beta1, o.Beta2, o.Eps, o.WeightDecay),
            new LrSchedule(o.Schedule, o.WarmupSteps, (int)totalSteps), o.Lr, o.MaxGradNorm, o.LossNormalisation,
            new LossOptions { TextWeight = o.TextLossWeight, AudioWeight = o.AudioLossWeight }, o.NanPatience);

    /// <summary>The batch's audio labels, or null when no sample of it has audio-out (the collator then gives a [0, 0] tensor).</summary>
    public static Tensor? AudioLabels(HiggsBatch b) => b.LabelAudioIds is { } l && l.shape[^1] > 0 ? l : null;

    public double LrAt(long step) => BaseLr * Schedule.Factor(step);

    /// <summary>Zeroes the LoRA gradients, then accumulates Σ w_i ∇L_i over <paramref name="microBatches"/>.</summary>
    public GradientResult ComputeGradients(IReadOnlyList<HiggsBatch> microBatches)
    {
        Model.train();
        Optimizer.ZeroGrad();
        int k = Model.Config.AudioNumCodebooks;
        double weight = 0, weighted = 0, textSum = 0; long textTok = 0, positions = 0;
        var cbSum = new double[k]; var cbTok = new long[k];
        bool finite = true;
        foreach (var b in microBatches)
        {
            var output = Model.Forward(b);
            var loss = HiggsLoss.Compute(output.Logits, output.ExpandedLabels, output.AudioLogits, AudioLabels(b), LossOptions);
            double l = loss.Loss.item<float>();
            var cb = loss.CodebookLosses.detach().cpu().data<float>().ToArray();
            double w = Normalisation == LossNormalisation.Mean ? 1.0 : loss.TextTokens + (loss.AudioTokens.Length == 0 ? 0 : loss.AudioTokens.Average());
            positions += output.AttentionMask.sum().item<long>();
            textSum += loss.TextLoss.item<float>() * loss.TextTokens; textTok += loss.TextTokens;
            for (int c = 0; c < k && c < cb.Length; c++) { cbSum[c] += cb[c] * loss.AudioTokens[c]; cbTok[c] += loss.AudioTokens[c]; }
            if (!double.IsFinite(l)) { finite = false; continue; }
            weight += w; weighted += w * l;
            if (w == 0 || !loss.Loss.requires_grad) continue;
            (w == 1.0 ? loss.Loss : loss.Loss * w).backward();
        }
        return new GradientResult(weight, weighted, textSum, textTok, cbSum, cbTok, positions, microBatches.Count, finite);
    }

    /// <summary>
    /// Divides the (summed) gradients by <paramref name="g"/>.Weight, then the watchdog: a non-finite loss or gradient
    /// norm skips the update (gradients zeroed, parameters and moments untouched) and after
    /// <see cref="NanPatience"/> such steps in a row the run stops. Otherwise clip, AdamW at lr(step).
    /// </summary>
    public ApplyResult ApplyGradients(GradientResult g, long step)
    {
        double lr = LrAt(step);
        var ps = Optimizer.Parameters.Select(p => p.Param).ToList();
        string? skip = null; double norm = double.NaN;
        if (!g.Finite) skip = "non-finite loss";
        else if (g.Weight <= 0) skip = "no scored tokens";
        else
        {
            if (g.Weight != 1.0)
                using (no_grad())
                    foreach (var p in ps) p.grad?.div_(g.Weight);
            norm = GradClip.ClipGradNorm(ps, MaxGradNorm);
            if (!double.IsFinite(norm)) skip = "non-finite gradient norm";
        }
        if (skip is not null)
        {
            Optimizer.ZeroGrad();
            if (skip != "no scored tokens") NonFiniteInARow++;
            if (NonFiniteInARow >= NanPatience)
                throw new TrainingDivergedException($"step {step}: {NonFiniteInARow} non-finite steps in a row (last: {skip}); stopping (train.nan_patience={NanPatience})");
            return new ApplyResult(false, norm, lr, NonFiniteInARow, skip);
        }
        NonFiniteInARow = 0;
        Optimizer.Step(lr);
        return new ApplyResult(true, norm, lr, 0, null);
    }
}
