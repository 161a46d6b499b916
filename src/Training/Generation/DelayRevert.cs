namespace HiggsCluster.Training.Generation;

/// <summary>
/// Generated delayed columns back to codec codes, as serve_engine.py's HiggsAudioServeEngine.generate does per segment:
/// revert_delay_pattern (model/higgs_audio/utils.py), clip to [0, codebookSize - 1], then [:, 1:-1].
/// </summary>
public static class DelayRevert
{
    /// <summary>
    /// <paramref name="delayedColumns"/>: one segment as generated, the all-BOS column first and the closing column
    /// last (W columns of <paramref name="codebooks"/> codes). Returns K × (W - K - 1) codes: row k of the revert is
    /// columns k .. W-K+k of codebook k, and the trim drops its first cell (the BOS) and its last (the EOS diagonal).
    /// Stream-BOS/EOS left inside the kept range are clipped to codebookSize - 1 as upstream clips them. Fewer than
    /// K + 2 columns give K × 0, as the same slicing does in upstream.
    /// </summary>
    public static long[,] ToCodes(IReadOnlyList<long[]> delayedColumns, int codebooks, int codebookSize = 1024)
    {
        if (codebooks <= 0) throw new ArgumentException($"delay revert: codebooks must be > 0, got {codebooks}");
        if (codebookSize <= 0) throw new ArgumentException($"delay revert: codebook size must be > 0, got {codebookSize}");
        for (int c = 0; c < delayedColumns.Count; c++)
            if (delayedColumns[c].Length != codebooks)
                throw new ArgumentException($"delay revert: column {c} has {delayedColumns[c].Length} codes, expected {codebooks}");
        int reverted = delayedColumns.Count - codebooks + 1;
        int t = Math.Max(0, reverted - 2);
        var codes = new long[codebooks, t];
        for (int k = 0; k < codebooks; k++)
            for (int i = 0; i < t; i++)
                codes[k, i] = Math.Clamp(delayedColumns[k + 1 + i][k], 0, codebookSize - 1);
        return codes;
    }
}
