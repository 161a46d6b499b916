using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// Batches for `higgs-bench gpu` whose rows each merge to exactly a given number of positions, so "batch 4 × 4096"
/// means 16,384 real positions with no padding (the rows of <see cref="PeerBench.MakeBatch"/> differ by their random
/// text and reference-audio lengths).
/// </summary>
internal static class GpuBenchBatch
{
    /// <summary>
    /// Each row is a voice-clone sample whose target audio is sized so the row merges to <paramref name="seq"/>
    /// positions: the layout is fixed by the row's seed, and a merged length grows one-for-one with target frames.
    /// </summary>
    public static HiggsBatch OfSeq(HiggsAudioConfig cfg, int batch, int seq, int seed)
    {
        var samples = new List<ChatMLDatasetSample>();
        for (int r = 0; r < batch; r++)
        {
            const int probe = 16;
            long rest = MergedLength(cfg, PeerBench.MakeSample(new Random(seed + r), cfg, probe)) - probe;
            long frames = seq - rest;
            if (frames < 1) throw new ArgumentException($"--seq {seq} is shorter than a sample's text and reference audio ({rest + 1} positions)");
            samples.Add(PeerBench.MakeSample(new Random(seed + r), cfg, (int)frames));
        }
        var b = PeerBench.Collate(cfg, samples);
        var lengths = RowLengths(cfg, b);
        if (lengths.Any(l => l != seq))
            throw new InvalidOperationException($"rows merged to [{string.Join(", ", lengths)}] positions, expected {seq} each");
        return b;
    }

    /// <summary>Merged (non-padding) positions of a one-sample batch, as the model's forward merges it.</summary>
    private static long MergedLength(HiggsAudioConfig cfg, ChatMLDatasetSample sample)
    {
        using var b = PeerBench.Collate(cfg, new[] { sample });
        return RowLengths(cfg, b)[0];
    }

    /// <summary>
    /// Non-padding merged positions of every row: SequenceMerge on one-wide embeddings, which places the audio
    /// segments exactly as the forward does at a fraction of the memory.
    /// </summary>
    public static long[] RowLengths(HiggsAudioConfig cfg, HiggsBatch b)
    {
        using var scope = NewDisposeScope();
        var ids = b.InputIds;
        Tensor? Width1(Tensor? codes) => codes is null ? null : zeros(codes.shape[^1], 1);
        var merged = SequenceMerge.Merge(zeros(ids.shape[0], ids.shape[1], 1), ids, b.AttentionMask, b.LabelIds, null, null,
            Width1(b.AudioInIds), b.AudioInIdsStart, Width1(b.AudioOutIds), b.AudioOutIdsStart,
            cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx, cfg.PadTokenId, roundTo: 1, leftPadding: ids.shape[0] == 1);
        return merged.AttentionMask.ne(0).sum(dim: 1).data<long>().ToArray();
    }
}
