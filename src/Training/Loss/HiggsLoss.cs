using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Loss;

public enum CodebookReduction { Mean, Sum, Weighted }

/// <summary>How text and audio losses are combined.</summary>
public sealed record LossOptions
{
    public double TextWeight { get; init; } = 1.0;
    public double AudioWeight { get; init; } = 1.0;
    public CodebookReduction Reduction { get; init; } = CodebookReduction.Mean;
    /// <summary>Per-codebook weights for <see cref="CodebookReduction.Weighted"/> (Σ w_c · loss_c).</summary>
    public IReadOnlyList<double>? CodebookWeights { get; init; }
}

/// <summary>Loss terms of one batch. Counts are the numbers of non-ignored targets.</summary>
public sealed record LossResult(Tensor Loss, Tensor TextLoss, Tensor AudioLoss, Tensor CodebookLosses, long TextTokens, long[] AudioTokens);

/// <summary>
/// The next-token losses a training loop needs (upstream's forward returns none): position t of the text logits
/// predicts expanded label t+1, and audio-out column n predicts label column n+1 in every codebook. A global shift
/// over the concatenated audio stream is safe because every segment's first label column is -100.
/// A term with no target is 0 (not NaN) so batches without trained audio or text still step.
/// </summary>
public static class HiggsLoss
{
    public const long Ignore = -100;

    public static LossResult Compute(Tensor logits, Tensor? expandedLabels, Tensor audioLogits, Tensor? labelAudioIds, LossOptions? options = null)
    {
        var o = options ?? new LossOptions();
        var dev = audioLogits.device;

        Tensor textLoss; long textTokens = 0;
        if (expandedLabels is null || logits.shape[1] < 2) textLoss = zeros(Array.Empty<long>(), ScalarType.Float32, dev);
        else
        {
            if (!expandedLabels.shape.SequenceEqual(logits.shape[..2]))
                throw new InvalidDataException($"expanded labels [{string.Join(",", expandedLabels.shape)}] do not match logits [{string.Join(",", logits.shape)}]");
            var target = expandedLabels[.., 1..].reshape(-1).to(logits.device);
            var keep = target.Ne(Ignore).nonzero().squeeze(1);
            textTokens = keep.shape[0];
            // Gather the scored rows first, then go to fp32 (avoids a full fp32 copy of (B,L,V)).
            var rows = logits[.., ..^1, ..].reshape(-1, logits.shape[2]).index_select(0, keep).to_type(ScalarType.Float32);
            textLoss = textTokens == 0 ? zeros(Array.Empty<long>(), ScalarType.Float32, dev)
                : nn.functional.cross_entropy(rows, target.index_select(0, keep));
        }

        long k = audioLogits.shape[1];
        var perCodebook = new List<Tensor>();
        var audioTokens = new long[k];
        if (labelAudioIds is not null && labelAudioIds.shape[0] != k)
            throw new InvalidDataException($"label_audio_ids has {labelAudioIds.shape[0]} codebooks, audio logits {k}");
        if (labelAudioIds is not null && labelAudioIds.shape[1] != audioLogits.shape[0])
            throw new InvalidDataException($"label_audio_ids has {labelAudioIds.shape[1]} columns, audio logits {audioLogits.shape[0]} rows");
        for (long c = 0; c < k; c++)
        {
            if (labelAudioIds is null || audioLogits.shape[0] < 2) { perCodebook.Add(zeros(Array.Empty<long>(), ScalarType.Float32, dev)); continue; }
            var target = labelAudioIds[c, 1..].to(dev);
            var keep = target.Ne(Ignore).nonzero().squeeze(1);
            audioTokens[c] = keep.shape[0];
            if (audioTokens[c] == 0) { perCodebook.Add(zeros(Array.Empty<long>(), ScalarType.Float32, dev)); continue; }
            var z = audioLogits[..^1, c, ..].index_select(0, keep).to_type(ScalarType.Float32);
            perCodebook.Add(nn.functional.cross_entropy(z, target.index_select(0, keep)));
        }
        var cb = stack(perCodebook);
        Tensor audioLoss = o.Reduction switch
        {
            CodebookReduction.Mean => cb.mean(),
            CodebookReduction.Sum => cb.sum(),
            _ => Weighted(cb, o.CodebookWeights),
        };
        var loss = textLoss.Times(o.TextWeight).Plus(audioLoss.Times(o.AudioWeight));
        return new LossResult(loss, textLoss, audioLoss, cb, textTokens, audioTokens);
    }

    private static Tensor Weighted(Tensor cb, IReadOnlyList<double>? w)
    {
        if (w is null || w.Count != cb.shape[0])
            throw new ArgumentException($"weighted codebook reduction needs {cb.shape[0]} codebook weights, got {w?.Count ?? 0}");
        return (cb * tensor(w.Select(x => (float)x).ToArray(), device: cb.device)).sum();
    }
}
