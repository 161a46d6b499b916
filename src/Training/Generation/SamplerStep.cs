namespace HiggsCluster.Training.Generation;

/// <summary>What one <see cref="HiggsSampler.Next"/> call adds to the sequence.</summary>
public abstract record SamplerStep
{
    private SamplerStep() { }

    /// <summary>A text token to append (sampled, or the forced &lt;|audio_eos|&gt;).</summary>
    public sealed record Text(long TokenId) : SamplerStep;

    /// <summary>
    /// One delayed audio column of K codes, appended as one &lt;|AUDIO_OUT|&gt; position. <see cref="EndsAudio"/> marks
    /// the column that closes the segment: upstream (modeling_higgs_audio.py, _sample) appends &lt;|audio_eos|&gt; in the
    /// same step and never feeds that column to the model, so a driver should not feed it either and should call Next
    /// again at once for the forced &lt;|audio_eos|&gt;.
    /// </summary>
    public sealed record Audio(long[] Column) : SamplerStep
    {
        public bool EndsAudio { get; init; }
    }

    /// <summary>Generation is over (stop token or step limit); nothing is appended.</summary>
    public sealed record Done(string Reason) : SamplerStep;
}
