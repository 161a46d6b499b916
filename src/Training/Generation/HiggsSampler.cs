using HiggsCluster.Planning;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// The token-choice half of upstream's generation loop (modeling_higgs_audio.py, HiggsAudioModel._sample with
/// _sample_text_tokens and _sample_audio_tokens), one step per call; the driver runs the model and appends what Next
/// returns. Modes follow _sample: TEXT until &lt;|audio_out_bos|&gt; is the last token, then AUDIO_INIT (one all-BOS
/// column, logits ignored), then AUDIO_IN_PROGRESS (one column of K codes per step) until the delay countdown closes
/// the segment, whose step also appends &lt;|audio_eos|&gt;; then TEXT again. Batch size 1, as upstream asserts.
/// </summary>
public sealed class HiggsSampler
{
    private enum Mode { Text, AudioInit, Audio, AudioEosPending, Finished }

    private readonly GenerationTokens _tokens;
    private readonly SamplingOptions _options;
    private readonly AudioDelayState _delay;
    private readonly List<long[]> _history = new();
    private readonly List<long[]> _columns = new();
    private readonly List<List<long[]>> _segments = new();
    private SplitMix64 _rng;
    private Mode _mode = Mode.Text;
    private bool _limitReached;

    public HiggsSampler(GenerationTokens tokens, SamplingOptions options) : this(tokens, options, null, null) { }

    /// <param name="lastPromptToken">
    /// The prompt's last token: when it is &lt;|audio_out_bos|&gt; (serve_engine's force_audio_gen appends it), the first
    /// step is the all-BOS column, as _sample picks AUDIO_INIT from input_ids[-1].
    /// </param>
    /// <param name="promptAudioOut">
    /// Delayed audio-out columns already in the prompt (upstream's audio_out_ids before generation); RAS counts them in
    /// its window for the first columns of the first generated segment.
    /// </param>
    public HiggsSampler(GenerationTokens tokens, SamplingOptions options, long? lastPromptToken, IReadOnlyList<long[]>? promptAudioOut)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(options);
        tokens.Validate();
        options.Validate();
        _tokens = tokens;
        _options = options;
        _delay = new AudioDelayState(tokens.Codebooks, tokens.StreamBos, tokens.StreamEos);
        _rng = new SplitMix64(options.Seed);
        if (promptAudioOut is not null)
            foreach (var c in promptAudioOut)
            {
                if (c.Length != tokens.Codebooks) throw new ArgumentException($"sampler: prompt audio column has {c.Length} codes, expected {tokens.Codebooks}");
                _history.Add((long[])c.Clone());
            }
        if (lastPromptToken == tokens.AudioOutBos) _mode = Mode.AudioInit;
    }

    /// <summary>True when the next step needs audio logits (K × C, C = codebook size + 2).</summary>
    public bool InAudio => _mode == Mode.Audio;

    /// <summary>
    /// True when the next Next ignores the logits: the all-BOS column (upstream still runs the model on
    /// &lt;|audio_out_bos|&gt; and discards its logits, so the driver must still feed that token), the forced
    /// &lt;|audio_eos|&gt; after a closing column (upstream runs no forward pass for it), and Done.
    /// </summary>
    public bool NextIsForced => _mode is Mode.AudioInit or Mode.AudioEosPending or Mode.Finished;

    /// <summary>True once a stop token or the step limit has ended generation; Next returns Done from then on.</summary>
    public bool Finished => _mode == Mode.Finished;

    public string? FinishReason { get; private set; }

    /// <summary>Steps counted against MaxNewTokens so far.</summary>
    public int Steps { get; private set; }

    /// <summary>Every generated delayed column so far, all segments in order (each begins with its all-BOS column).</summary>
    public IReadOnlyList<long[]> AudioColumns => _columns;

    /// <summary>The generated columns per audio segment (upstream's audio_sequences); revert each with DelayRevert.ToCodes.</summary>
    public IReadOnlyList<IReadOnlyList<long[]>> AudioSegments => _segments;

    /// <summary>
    /// Given the last position's logits (<paramref name="textLogits"/>: one row of the vocabulary when !InAudio;
    /// <paramref name="audioLogits"/>: K × C row-major when InAudio; the other may be empty), returns what to append.
    /// Forced steps ignore both spans: the all-BOS column after &lt;|audio_out_bos|&gt;, &lt;|audio_eos|&gt; after a
    /// closing column, and Done.
    /// </summary>
    public SamplerStep Next(ReadOnlySpan<float> textLogits, ReadOnlySpan<float> audioLogits)
    {
        switch (_mode)
        {
            case Mode.Finished:
                return new SamplerStep.Done(FinishReason!);
            case Mode.AudioInit:
                return AudioInit();
            case Mode.AudioEosPending:
                return ForcedAudioEos();
            case Mode.Audio:
                return AudioStep(audioLogits);
            default:
                return TextStep(textLogits);
        }
    }

    private SamplerStep TextStep(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("sampler: text mode needs the text logits of the last position");
        // _sample_text_tokens (TEXT mode): warped multinomial, or argmax without do_sample.
        long token = LogitWarpers.Choose(logits, _options, ref _rng);
        // _sample: the mode of the next step is read from input_ids[-1]; <|audio_out_bos|> means AUDIO_INIT.
        if (token == _tokens.AudioOutBos) _mode = Mode.AudioInit;
        CountStep(token);
        return new SamplerStep.Text(token);
    }

    private SamplerStep AudioInit()
    {
        // _sample_text_tokens (AUDIO_INIT): the logits are computed and dropped; the column is all stream-BOS and the
        // text token is <|AUDIO_OUT|>. _sample starts a new audio_sequences entry with it.
        var column = new long[_tokens.Codebooks];
        Array.Fill(column, (long)_tokens.StreamBos);
        _segments.Add(new List<long[]>());
        Append(column);
        _mode = Mode.Audio;
        CountStep(null);
        return new SamplerStep.Audio((long[])column.Clone());
    }

    private SamplerStep AudioStep(ReadOnlySpan<float> logits)
    {
        int k = _tokens.Codebooks;
        if (logits.IsEmpty || logits.Length % k != 0)
            throw new ArgumentException($"sampler: audio mode needs K × C audio logits, got {logits.Length} values for K = {k}");
        int vocab = logits.Length / k;
        if (vocab <= Math.Max(_tokens.StreamBos, _tokens.StreamEos))
            throw new ArgumentException($"sampler: audio logits have {vocab} codes per codebook, too few for stream bos {_tokens.StreamBos} / eos {_tokens.StreamEos}");
        // _sample_audio_tokens: every codebook row goes through the same warpers as text, then argmax or multinomial.
        var column = new long[k];
        for (int r = 0; r < k; r++) column[r] = LogitWarpers.Choose(logits.Slice(r * vocab, vocab), _options, ref _rng);
        // _sample_audio_tokens: RAS (ras_win_len set, i.e. > 0 in serve_engine) runs before the delay handling.
        RepetitionAwareSampling.Apply(column, logits, vocab, _history, _options.RasWindow, _options.RasMaxRepeat, ref _rng);
        // _sample_audio_tokens: the delay rules only exist under use_delay_pattern; without it nothing ever closes
        // the segment and audio runs to the step limit, as upstream's code does.
        bool ends = _tokens.UseDelayPattern && _delay.Apply(column);
        Append(column);
        if (ends) _mode = Mode.AudioEosPending;
        CountStep(null);
        if (ends && _mode == Mode.Finished) _mode = Mode.AudioEosPending; // the limit still lets the same step's <|audio_eos|> out
        return new SamplerStep.Audio((long[])column.Clone()) { EndsAudio = ends };
    }

    private SamplerStep ForcedAudioEos()
    {
        // _sample_audio_tokens sets the text token to <|audio_eos|> in the step that closed the segment; _sample
        // appends it to input_ids. That step was already counted, so this one is not.
        _mode = Mode.Text;
        long token = _tokens.AudioEos;
        if (_tokens.StopTokens.Contains(token)) Finish($"stop token {token}");
        else if (_limitReached) Finish($"max new tokens {_options.MaxNewTokens}");
        return new SamplerStep.Text(token);
    }

    private void Append(long[] column)
    {
        var copy = (long[])column.Clone();
        _columns.Add(copy);
        _segments[^1].Add(copy);
        _history.Add(copy);
    }

    /// <summary>_sample's stopping criteria after each step: stop strings on the text token, then MaxLengthCriteria.</summary>
    private void CountStep(long? textToken)
    {
        Steps++;
        if (textToken is long t && _tokens.StopTokens.Contains(t)) Finish($"stop token {t}");
        else if (Steps >= _options.MaxNewTokens)
        {
            _limitReached = true;
            Finish($"max new tokens {_options.MaxNewTokens}");
        }
    }

    private void Finish(string reason)
    {
        _mode = Mode.Finished;
        FinishReason = reason;
    }
}
