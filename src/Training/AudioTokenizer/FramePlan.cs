namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// The frame arithmetic of upstream encode for one clip length: the semantic branch decides T, the acoustic encoder is
/// re-run on a zero-padded copy when its first pass disagrees, and both are truncated to the shorter one.
/// Counts are -1 where upstream raises at or before that stage.
/// </summary>
public sealed record FramePlan(long Samples, long Resampled16k, long HubertFrames, long SemanticFrames,
    long AcousticFramesFirstPass, bool Repadded, long Frames, string? Error)
{
    public bool Raises => Error != null;

    public static FramePlan For(TokenizerSizes s, long n)
    {
        if (n < 1) return new FramePlan(n, 0, -1, -1, -1, false, -1, $"a clip needs at least one sample (got {n})");
        long m = (n * s.SemanticSampleRate + s.SampleRate - 1) / s.SampleRate;
        long h = HubertForward.FrameCount(s.Hubert, m + 2 * TokenizerSizes.SemanticEdgePad);
        if (h < 1)
            return new FramePlan(n, m, -1, -1, -1, false, -1,
                $"clip of {n} samples is too short for the semantic (HuBERT) branch; upstream raises here");
        long factor = s.SemanticDownsampleFactor;
        long ts = (h + factor - 1) / factor;
        long ta = DacCodec.EncoderFrames(s.Ratios, n);
        if (ta < 1)
            return new FramePlan(n, m, h, ts, -1, false, -1,
                $"clip of {n} samples is too short for the acoustic encoder's strided convolutions; upstream raises here");
        if (ta == ts) return new FramePlan(n, m, h, ts, ta, false, ts, null);
        long ta2 = DacCodec.EncoderFrames(s.Ratios, n + 2L * s.RepadSamples);
        return new FramePlan(n, m, h, ts, ta, true, Math.Min(ta2, ts), null);
    }
}
