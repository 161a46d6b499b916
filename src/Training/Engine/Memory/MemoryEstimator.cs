using System.Globalization;

namespace HiggsCluster.Training.Engine.Memory;

/// <summary>What the estimate needs to know of the model and the run: sizes, counts and dtypes, no tensors.</summary>
public sealed record ModelFacts(
    int Layers, int Hidden, int Intermediate, int QDim, int KvDim, int Vocab, int Codebooks, int CodebookVocab,
    long BaseParameters, int BaseBytes, long LoraParameters, int LoraRank, IReadOnlyList<string> LoraTargets, bool LoraDropout,
    bool DualFfn, bool Cuda);

/// <summary>The tokens of one micro-batch: samples × padded positions, of which text targets and audio output frames are scored.</summary>
public sealed record BatchShape(int Samples, long PositionsPerSample, long TextTargets, long AudioFrames)
{
    public long Tokens => Samples * PositionsPerSample;
}

/// <summary>Bytes by kind; <see cref="Total"/> is the expected peak of one forward/backward + AdamW step.</summary>
public sealed record MemoryEstimate(long Weights, long LoraAndOptimizer, long Activations, long Logits, long Runtime)
{
    public long Total => Weights + LoraAndOptimizer + Activations + Logits + Runtime;

    public static string GiB(long bytes) => (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + " GiB";

    public override string ToString() =>
        $"{GiB(Total)} (weights {GiB(Weights)}, LoRA + AdamW {GiB(LoraAndOptimizer)}, activations {GiB(Activations)}, logits {GiB(Logits)}, runtime {GiB(Runtime)})";
}

/// <summary>
/// A closed-form estimate of the peak memory of one training step, from the tensors our forward keeps for backward.
/// It is what the dry run uses to say which settings would fit when the measured step does not, and what makes the
/// table in docs/scaling.md. Per token and decoder layer, the activations kept are (a = bytes of the base dtype):
/// the two input norms' fp32 statistics and outputs (DualFFN runs both), q/k/v and their rotated copies, the attention
/// output and the residual, the MLP's norm, gate, up, activation and product, and for every LoRA target on the path
/// the fp32 copy of its input (twice with dropout: the mask and the dropped copy) and its rank-r hidden. Activation
/// checkpointing keeps only each layer's input, plus one layer recomputed during backward. Logits: the text head's
/// output and gradient over every position, the fp32 rows of the scored text targets (cast and log-softmax), and the
/// audio head's fp32 logits over the audio frames. Runtime: the CUDA context and cuBLAS workspaces.
/// </summary>
public static class MemoryEstimator
{
    private const long RuntimeCuda = 1L << 30;

    public static MemoryEstimate Estimate(ModelFacts m, BatchShape b, bool checkpointing)
    {
        long a = m.BaseBytes, t = b.Tokens;
        long weights = m.BaseParameters * a;
        // fp32 weights, gradients, both AdamW moments and the flat all-reduce bucket
        long lora = m.LoraParameters * (4 + 4 + 8 + 4);

        long norms = (m.DualFfn ? 2 : 1) * (4L * m.Hidden + a * m.Hidden) + a * m.Hidden;
        long attention = a * (m.QDim + 2L * m.KvDim) + a * (m.QDim + m.KvDim) + a * m.QDim + 2 * a * m.Hidden;
        long mlp = 4L * m.Hidden + a * m.Hidden + 4 * a * m.Intermediate + 2 * a * m.Hidden;
        long loraPath = 0;
        foreach (var (name, input) in PathInputs(m))
            if (m.LoraTargets.Contains(name)) loraPath += (m.LoraDropout ? 9 : 4) * input + 4L * m.LoraRank;
        long perLayer = norms + attention + mlp + loraPath;

        long activations = checkpointing
            ? t * (m.Layers * a * m.Hidden + perLayer + 2 * a * m.Hidden)
            : t * (m.Layers * perLayer);
        activations += t * (2 * a * m.Hidden + 4L * m.Hidden);               // embeddings in, final norm

        long textLogits = 2 * t * m.Vocab * a + b.TextTargets * m.Vocab * 8L;
        long audioLogits = b.AudioFrames * (long)m.Codebooks * m.CodebookVocab * (a + 4 + 4 + 4);
        return new MemoryEstimate(weights, lora, activations, textLogits + audioLogits, m.Cuda ? RuntimeCuda : 0);
    }

    /// <summary>The projections one token passes through in a decoder layer, with their input widths.</summary>
    private static IEnumerable<(string Name, long Input)> PathInputs(ModelFacts m)
    {
        yield return ("q_proj", m.Hidden);
        yield return ("k_proj", m.Hidden);
        yield return ("v_proj", m.Hidden);
        yield return ("o_proj", m.QDim);
        yield return ("gate_proj", m.Hidden);
        yield return ("up_proj", m.Hidden);
        yield return ("down_proj", m.Intermediate);
    }

    /// <summary>
    /// Settings that would bring the estimate under <paramref name="budget"/> bytes, each as keys to set, cheapest
    /// first: activation checkpointing; a smaller micro-batch with more accumulation (same global batch); shorter
    /// samples (<c>data.max_tokens</c>). Empty when the run as configured fits.
    /// </summary>
    public static IReadOnlyList<string> WouldFit(ModelFacts m, BatchShape b, bool checkpointing, int gradAccumulation, long budget)
    {
        var fixes = new List<string>();
        bool Fits(BatchShape s, bool ckpt) => Estimate(m, s, ckpt).Total <= budget;
        if (Fits(b, checkpointing)) return fixes;
        if (!checkpointing && Fits(b, true)) fixes.Add("train.gradient_checkpointing: true");
        for (int n = b.Samples / 2; n >= 1; n /= 2)
        {
            var smaller = Scale(b, n, b.PositionsPerSample);
            bool ckpt = checkpointing || !Fits(smaller, false);
            if (!Fits(smaller, ckpt)) continue;
            int factor = b.Samples / n;
            fixes.Add($"train.batch_size: {n}, train.grad_accumulation: {gradAccumulation * factor} (same global batch)" + (ckpt && !checkpointing ? ", train.gradient_checkpointing: true" : ""));
            break;
        }
        for (long len = b.PositionsPerSample / 2; len >= 256; len /= 2)
        {
            var shorter = Scale(b, b.Samples, len);
            bool ckpt = checkpointing || !Fits(shorter, false);
            if (!Fits(shorter, ckpt)) continue;
            fixes.Add($"data.max_tokens: {len}" + (ckpt && !checkpointing ? ", train.gradient_checkpointing: true" : ""));
            break;
        }
        return fixes;
    }

    /// <summary>The same batch with <paramref name="samples"/> samples of <paramref name="positions"/> positions (targets scale alike).</summary>
    public static BatchShape Scale(BatchShape b, int samples, long positions)
    {
        double f = samples * (double)positions / Math.Max(1, b.Tokens);
        return new BatchShape(samples, positions, (long)Math.Ceiling(b.TextTargets * f), (long)Math.Ceiling(b.AudioFrames * f));
    }
}
