namespace HiggsCluster.Training.Generation;

/// <summary>
/// The delay-pattern rules of upstream's _sample_audio_tokens (modeling_higgs_audio.py), applied to each sampled audio
/// column after RAS: the ramp-in that holds the higher codebooks at stream-BOS, and the countdown that closes the
/// segment once a codebook emits stream-EOS. Holds upstream's num_delay and num_remaining_delays.
/// </summary>
public sealed class AudioDelayState(int codebooks, long streamBos, long streamEos)
{
    /// <summary>Codebooks past the ramp-in (upstream num_delay); 0 right after the all-BOS column.</summary>
    public int Delay { get; private set; }

    /// <summary>Columns left before the segment closes (upstream num_remaining_delays); null before any EOS.</summary>
    public int? Remaining { get; private set; }

    /// <summary>Rewrites <paramref name="column"/> in place; true when this column closes the audio segment.</summary>
    public bool Apply(long[] column)
    {
        // _sample_audio_tokens: while num_delay + 1 < K, codebooks num_delay+1.. are forced to stream-BOS.
        if (Delay + 1 < codebooks)
        {
            for (int k = Delay + 1; k < codebooks; k++) column[k] = streamBos;
            Delay++;
        }
        if (Remaining is int left)
        {
            // _sample_audio_tokens: codebooks below K - num_remaining_delays are forced to stream-EOS. The codebook on
            // the diagonal (index K - num_remaining_delays) keeps its sampled code; DelayRevert's trim drops that cell.
            for (int k = 0; k < codebooks - left; k++) column[k] = streamEos;
            Remaining = left - 1;
        }
        else
        {
            // _sample_audio_tokens: `all_eos_indices[0]` on the (n, 1) result of nonzero() is the FIRST row, so the
            // index the code calls last_eos_idx is the LOWEST codebook that emitted EOS. The name (and the countdown
            // K - idx - 1) reads as if the highest one was meant; we follow the code: lowest EOS codebook j forces
            // codebooks 0..j-1 to EOS, leaves those above j as sampled, and K - j - 1 columns remain.
            int first = Array.IndexOf(column, streamEos);
            if (first >= 0)
            {
                for (int k = 0; k < first; k++) column[k] = streamEos;
                Remaining = codebooks - first - 1;
            }
        }
        // _sample_audio_tokens: once no delay remains, the text token becomes <|audio_eos|> and both counters reset.
        if (Remaining is int r && r <= 0)
        {
            Delay = 0;
            Remaining = null;
            return true;
        }
        return false;
    }
}
