using static TorchSharp.torch;

namespace HiggsCluster.Training.Collation;

/// <summary>
/// The MusicGen-style delay pattern of upstream's build_delay_pattern_mask / revert_delay_pattern: codebook k is
/// shifted right by k columns, the k leading cells hold <c>bos</c> and the K-1-k trailing cells hold <c>pad</c>.
/// </summary>
public static class DelayPattern
{
    /// <summary>[K, T] codes to [K, T + K - 1] (int64, CPU).</summary>
    public static Tensor Build(Tensor codes, long bos, long pad)
    {
        if (codes.dim() != 2) throw new ArgumentException($"delay pattern: codes must be [K, T], got [{string.Join(",", codes.shape)}]");
        long k = codes.shape[0], t = codes.shape[1], w = t + k - 1;
        if (k == 0) return zeros(0, Math.Max(0, w), dtype: ScalarType.Int64);
        var src = codes.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        var dst = new long[k * w];
        for (long r = 0; r < k; r++)
        {
            long row = r * w;
            for (long j = 0; j < w; j++)
            {
                long c = j - r;
                dst[row + j] = c < 0 ? bos : c >= t ? pad : src[r * t + c];
            }
        }
        return tensor(dst, new[] { k, w });
    }

    /// <summary>[K, T + K - 1] back to [K, T]: row k = d[k, k : k + T].</summary>
    public static Tensor Revert(Tensor delayed)
    {
        if (delayed.dim() != 2) throw new ArgumentException("delay pattern: revert expects a 2-D tensor");
        long k = delayed.shape[0], t = delayed.shape[1] - k + 1;
        if (t < 0) throw new ArgumentException($"delay pattern: width {delayed.shape[1]} is smaller than K - 1 = {k - 1}");
        var rows = new List<Tensor>();
        for (long r = 0; r < k; r++) rows.Add(delayed.narrow(0, r, 1).narrow(1, r, t));
        return cat(rows, 0);
    }
}
