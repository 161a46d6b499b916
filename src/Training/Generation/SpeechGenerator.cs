using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Generation;

/// <summary>What a generation produced: the text tokens after the prompt, the delayed audio columns and their codes.</summary>
public sealed record GenerationResult(IReadOnlyList<long> TextTokens, IReadOnlyList<long[]> DelayedColumns, long[,] Codes, string StopReason)
{
    public int Frames => Codes.GetLength(1);
}

/// <summary>
/// The generation loop: the prompt goes through the model once (filling the KV cache), then each step feeds the
/// position the sampler chose (a text token or an audio column) and hands the new logits back to it, until it says done.
/// </summary>
public static class SpeechGenerator
{
    /// <param name="prompt">Batch size 1, ending with &lt;|audio_out_bos|&gt; (the serve engine's forced audio) or any text.</param>
    public static GenerationResult Run(HiggsAudioModel model, HiggsBatch prompt, GenerationTokens tokens, SamplingOptions options)
    {
        using var _ = no_grad();
        bool wasTraining = model.training;
        model.eval();
        try
        {
            long last = prompt.InputIds[0, -1].item<long>();
            using var cache = new KvCache(model);
            var sampler = new HiggsSampler(tokens, options, last, PromptAudioOut(prompt, tokens.Codebooks));
            var text = new List<long>();
            var logits = model.Prefill(prompt, cache);
            while (!sampler.Finished)
            {
                SamplerStep step;
                using (var scope = NewDisposeScope())
                    step = sampler.NextIsForced ? sampler.Next(default, default) : sampler.Next(TextFloats(logits.Text, model.Config), Floats(logits.Audio));
                switch (step)
                {
                    case SamplerStep.Text t:
                        text.Add(t.TokenId);
                        if (!sampler.Finished) Swap(ref logits, model.DecodeText(t.TokenId, cache));
                        break;
                    // the column that closes a segment is not fed (upstream appends <|audio_eos|> in its place); the forced
                    // <|audio_eos|> comes from the next call
                    case SamplerStep.Audio a when a.EndsAudio:
                        break;
                    case SamplerStep.Audio a:
                        if (!sampler.Finished) Swap(ref logits, model.DecodeAudio(a.Column, cache));
                        break;
                    case SamplerStep.Done:
                        break;
                }
            }
            logits.Text.Dispose(); logits.Audio.Dispose();
            return new GenerationResult(text, sampler.AudioColumns.ToList(), Codes(sampler, tokens.Codebooks, model.Config.AudioCodebookSize),
                sampler.FinishReason ?? "done");
        }
        finally { model.train(wasTraining); }
    }

    /// <summary>Each segment reverted on its own (revert_delay_pattern(...)[:, 1:-1]) and the segments joined in time, as the serve engine joins their waveforms.</summary>
    private static long[,] Codes(HiggsSampler sampler, int k, int codebookSize)
    {
        var parts = sampler.AudioSegments.Select(seg => DelayRevert.ToCodes(seg, k, codebookSize)).ToList();
        int t = parts.Sum(p => p.GetLength(1));
        var codes = new long[k, t];
        int at = 0;
        foreach (var p in parts)
        {
            for (int q = 0; q < k; q++) for (int j = 0; j < p.GetLength(1); j++) codes[q, at + j] = p[q, j];
            at += p.GetLength(1);
        }
        return codes;
    }

    /// <summary>The prompt's audio-out columns (a cloned voice's reference): upstream's repetition window counts them.</summary>
    private static IReadOnlyList<long[]>? PromptAudioOut(HiggsBatch prompt, int k)
    {
        if (prompt.AudioOutIds is not { } ao || ao.shape[^1] == 0) return null;
        var flat = ao.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        long n = ao.shape[1];
        return Enumerable.Range(0, (int)n).Select(j => Enumerable.Range(0, k).Select(q => flat[q * n + j]).ToArray()).ToList();
    }

    private static void Swap(ref StepLogits current, StepLogits next)
    {
        current.Text.Dispose(); current.Audio.Dispose();
        current = next;
    }

    /// <summary>
    /// Text logits with the audio placeholders (&lt;|AUDIO|&gt;, &lt;|AUDIO_OUT|&gt;) ruled out: they stand for audio
    /// positions and have no meaning as a sampled token (upstream would feed one as text and misplace the merge; an
    /// undertrained model does sample them).
    /// </summary>
    private static float[] TextFloats(Tensor t, HiggsAudioConfig cfg)
    {
        var f = Floats(t);
        foreach (var id in new[] { cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx })
            if (id >= 0 && id < f.Length) f[id] = float.NegativeInfinity;
        return f;
    }

    private static float[] Floats(Tensor t) => t.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
}
