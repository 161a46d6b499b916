using HiggsCluster.Planning;
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
    public static GradientResult Empty(int codebooks) => new(0, 0, 0, 0, new double[codebooks], new long[codebooks], 0, 0, true);

    /// <summary>
    /// The record as numbers (weight, weighted loss, text sum, text tokens, codebook sums…, codebook tokens…, positions,
    /// micro-batches, non-finite flag) for summing across ranks; <see cref="FromVector"/> reads the sum back.
    /// </summary>
    public double[] ToVector() => new[] { Weight, WeightedLoss, TextLossSum, TextTokens }
        .Concat(CodebookLossSums).Concat(CodebookTokens.Select(t => (double)t))
        .Concat(new double[] { Positions, MicroBatches, Finite ? 0 : 1 }).ToArray();

    public static GradientResult FromVector(double[] v)
    {
        int k = (v.Length - 7) / 2;
        if (k < 0 || v.Length != 7 + 2 * k) throw new ArgumentException($"a gradient result vector has 7 + 2·codebooks numbers, got {v.Length}");
        return new GradientResult(v[0], v[1], v[2], (long)v[3], v[4..(4 + k)], v[(4 + k)..(4 + 2 * k)].Select(x => (long)x).ToArray(),
            (long)v[4 + 2 * k], (int)v[5 + 2 * k], v[6 + 2 * k] == 0);
    }

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
    /// <summary>Seeds dropout per micro-batch (see <see cref="AccumulateMicroBatch"/>).</summary>
    public ulong Seed { get; init; }
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
            new LossOptions { TextWeight = o.TextLossWeight, AudioWeight = o.AudioLossWeight }, o.NanPatience) { Seed = (ulong)o.Seed };

    /// <summary>The batch's audio labels, or null when no sample of it has audio-out (the collator then gives a [0, 0] tensor).</summary>
    public static Tensor? AudioLabels(HiggsBatch b) => b.LabelAudioIds is { } l && l.shape[^1] > 0 ? l : null;

    public double LrAt(long step) => BaseLr * Schedule.Factor(step);

    /// <summary>
    /// One optimizer step's gradients over plan ranks: <paramref name="ranks"/>[r] are rank r's micro-batches. With one
    /// rank this is plain accumulation. With several, each rank's gradients are accumulated alone and the ranks are
    /// added in rank order, exactly as a cluster of one worker per rank sums them (the two-rank ring sum is a + b, and
    /// float addition is commutative), so the single-process result equals the cluster's bit for bit.
    /// </summary>
    public GradientResult ComputeGradients(IReadOnlyList<IReadOnlyList<HiggsBatch>> ranks, long step)
    {
        if (ranks.Count == 0) throw new ArgumentException("a step needs at least one plan rank");
        BeginStep();
        var total = AccumulateRank(ranks[0], step, 0);
        if (ranks.Count == 1) return total;
        var sum = FlatGradients();
        for (int r = 1; r < ranks.Count; r++)
        {
            Optimizer.ZeroGrad();
            total = total.Add(AccumulateRank(ranks[r], step, r));
            using var g = FlatGradients();
            sum.PlusInPlace(g);
        }
        SetFlatGradients(sum);
        sum.Dispose();
        return total;
    }

    /// <summary>Single-rank convenience (tests, the dry run).</summary>
    public GradientResult ComputeGradients(IReadOnlyList<HiggsBatch> microBatches, long step = 0) => ComputeGradients(new[] { microBatches }, step);

    /// <summary>Training mode, gradients zeroed: the start of a step's accumulation.</summary>
    public void BeginStep()
    {
        Model.train();
        Optimizer.ZeroGrad();
    }

    /// <summary>Accumulates Σ w_i ∇L_i of plan rank <paramref name="rank"/>'s micro-batches on top of the current gradients.</summary>
    public GradientResult AccumulateRank(IReadOnlyList<HiggsBatch> microBatches, long step, int rank)
    {
        var acc = GradientResult.Empty(Model.Config.AudioNumCodebooks);
        for (int m = 0; m < microBatches.Count; m++) acc = acc.Add(AccumulateMicroBatch(microBatches[m], step, rank, m));
        return acc;
    }

    /// <summary>
    /// Forward + backward of one micro-batch, gradients added to the LoRA parameters' .grad. Dropout draws from a
    /// generator seeded by (seed, step, plan rank, micro-batch), so a micro-batch gets the same masks whoever computes it
    /// and whenever (a restarted worker, fewer workers, a resume).
    /// </summary>
    public GradientResult AccumulateMicroBatch(HiggsBatch b, long step, int rank, int micro)
    {
        torch.manual_seed((long)(MicroBatchSeed(step, rank, micro) >> 1));
        int k = Model.Config.AudioNumCodebooks;
        var output = Model.Forward(b);
        var loss = HiggsLoss.Compute(output.Logits, output.ExpandedLabels, output.AudioLogits, AudioLabels(b), LossOptions);
        double l = loss.Loss.item<float>();
        var cb = loss.CodebookLosses.detach().cpu().data<float>().ToArray();
        double w = Normalisation == LossNormalisation.Mean ? 1.0 : loss.TextTokens + (loss.AudioTokens.Length == 0 ? 0 : loss.AudioTokens.Average());
        long positions = output.AttentionMask.sum().item<long>();
        double textSum = loss.TextLoss.item<float>() * loss.TextTokens;
        var cbSum = new double[k]; var cbTok = new long[k];
        for (int c = 0; c < k && c < cb.Length; c++) { cbSum[c] = cb[c] * loss.AudioTokens[c]; cbTok[c] = loss.AudioTokens[c]; }
        if (!double.IsFinite(l)) return new GradientResult(0, 0, textSum, loss.TextTokens, cbSum, cbTok, positions, 1, false);
        if (w != 0 && loss.Loss.requires_grad) (w == 1.0 ? loss.Loss : loss.Loss.Times(w)).backward();
        return new GradientResult(w, w * l, textSum, loss.TextTokens, cbSum, cbTok, positions, 1, true);
    }

    public ulong MicroBatchSeed(long step, int rank, int micro) =>
        SplitMix64.Hash(SplitMix64.Hash(SplitMix64.Hash(Seed, (ulong)step), (ulong)rank), (ulong)micro);

    /// <summary>Number of floats in the flat LoRA gradient (and parameter) vector, in optimizer order.</summary>
    public long FlatSize => Optimizer.Parameters.Sum(p => p.Param.numel());

    /// <summary>
    /// The LoRA gradients as one flat, contiguous float32 vector in optimizer order (absent gradients as zeros), on the
    /// CPU, or with <paramref name="onParameterDevice"/> where the parameters live (a CUDA bucket for NCCL).
    /// </summary>
    public Tensor FlatGradients(bool onParameterDevice = false)
    {
        using var _ = no_grad();
        return cat(Optimizer.Parameters.Select(p =>
        {
            var g = (p.Param.grad ?? zeros_like(p.Param)).detach().reshape(-1).to(ScalarType.Float32);
            return onParameterDevice ? g : g.cpu();
        }).ToList(), 0);
    }

    /// <summary>Writes a flat vector (see <see cref="FlatGradients"/>) back into the LoRA parameters' gradients.</summary>
    public void SetFlatGradients(Tensor flat)
    {
        using var _ = no_grad();
        long at = 0;
        foreach (var (_, p) in Optimizer.Parameters)
        {
            long n = p.numel();
            var part = flat.narrow(0, at, n).reshape(p.shape).to(p.dtype, p.device);
            if (p.grad is null) p.grad = part.clone(); else p.grad.copy_(part);
            at += n;
        }
        if (at != flat.numel()) throw new ArgumentException($"flat gradient has {flat.numel()} values, the adapter {at}");
    }

    /// <summary>The LoRA parameters as one flat float32 CPU vector in optimizer order.</summary>
    public Tensor FlatParameters()
    {
        using var _ = no_grad();
        return cat(Optimizer.Parameters.Select(p => p.Param.detach().reshape(-1).to(ScalarType.Float32).cpu()).ToList(), 0);
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
                    foreach (var p in ps) p.grad?.DivInPlace(g.Weight);
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
