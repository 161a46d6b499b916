using HiggsCluster.Training.Collation;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>Logits of one position: text (V) and audio (K, C), both fp32 on the CPU.</summary>
public sealed record StepLogits(Tensor Text, Tensor Audio);

/// <summary>
/// Incremental (KV-cached) forward for generation, batch size 1. Every step runs the same layers as
/// <see cref="Forward"/>: audio-code positions take the audio norms and audio_mlp in dual-FFN layers and pass
/// through fast-forward layers, whose text queries never see audio-code keys. All calls run under no_grad and
/// switch the model to eval mode (so LoRA dropout is off); the model is left in eval mode.
/// </summary>
public sealed partial class HiggsAudioModel
{
    /// <summary>
    /// Runs the prompt (text, audio-in codes, Whisper features, audio-out columns: anything <see cref="Forward"/>
    /// reads) into an empty cache and returns the logits of its last position. The prompt is merged without
    /// rounding the length (Forward's padding only adds masked positions); padding given in its attention_mask stays
    /// in the cache as masked keys.
    /// </summary>
    public StepLogits Prefill(HiggsBatch prompt, KvCache cache)
    {
        CheckCanGenerate(cache);
        if (prompt.InputIds.shape[0] != 1) throw new ArgumentException($"generation takes one prompt; the batch has {prompt.InputIds.shape[0]}");
        if (cache.Length != 0) throw new ArgumentException("Prefill needs an empty KV cache");
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        if (training) eval();
        var merged = EmbedAndMerge(prompt, roundTo: 1, leftPadding: true);
        var valid = merged.AttentionMask.Ne(0).flatten().cpu().data<bool>().ToArray();
        var codes = (merged.AudioInDiscreteCodesMask | merged.AudioOutMask).flatten().cpu().data<bool>().ToArray();
        return Step(merged.Embeds, merged.PositionIds, valid, codes, cache, valid.LongCount(v => v)).MoveToOuterDisposeScope();
    }

    /// <summary>Appends one text token at the next position and returns its logits.</summary>
    public StepLogits DecodeText(long tokenId, KvCache cache)
    {
        CheckCanGenerate(cache);
        if (tokenId < 0 || tokenId >= Config.Text.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokenId), $"token {tokenId} is outside the vocabulary of {Config.Text.VocabSize}");
        if (tokenId == Config.AudioInTokenIdx || tokenId == Config.AudioOutTokenIdx)
            throw new ArgumentException($"token {tokenId} is an audio placeholder, not text: append audio with DecodeAudio");
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        if (training) eval();
        var e = embed_tokens.forward(torch.tensor(new[] { tokenId }, device: Device).view(1, 1));
        return Step(e, torch.tensor(new[] { cache.NextPosition }, device: Device).view(1, 1),
            new[] { true }, new[] { false }, cache, cache.NextPosition + 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Appends one audio-out position holding the K codes of <paramref name="column"/> (embedded as audio_out_ids
    /// are: codebook offsets, sum or mean, audio_out_embed_projector) and returns its logits.
    /// </summary>
    public StepLogits DecodeAudio(long[] column, KvCache cache)
    {
        CheckCanGenerate(cache);
        if (column.Length != Config.AudioNumCodebooks) throw new ArgumentException($"an audio column has {Config.AudioNumCodebooks} codes, got {column.Length}");
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        if (training) eval();
        var e = EmbedAudioIds(torch.tensor(column, device: Device).view(column.Length, 1), "audio column").view(1, 1, -1);
        return Step(e, torch.tensor(new[] { cache.NextPosition }, device: Device).view(1, 1),
            new[] { true }, new[] { true }, cache, cache.NextPosition + 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reference for the cache: <see cref="Forward"/>'s path on the whole sequence (batch size 1), then both
    /// heads on the hidden state of its last position.
    /// </summary>
    public StepLogits Recompute(HiggsBatch whole)
    {
        if (whole.InputIds.shape[0] != 1) throw new ArgumentException($"Recompute takes one sequence; the batch has {whole.InputIds.shape[0]}");
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        if (training) eval();
        var (_, h) = DecoderHidden(whole);
        return Heads(h[0, h.shape[1] - 1]).MoveToOuterDisposeScope();
    }

    private void CheckCanGenerate(KvCache cache)
    {
        if (layers.Any(l => l.HasAudioAttention))
            throw new NotSupportedException("generation with audio self-attention (use_audio_out_self_attention) is not implemented; the released model does not use it");
        if (cache.NumLayers != layers.Count || cache.DType != DType || cache.Device.type != Device.type)
            throw new ArgumentException("the KV cache was made for a different model (layer count, dtype or device)");
    }

    /// <summary>Runs new rows (1,L,H) at the given RoPE positions through every layer, appending to the cache.</summary>
    private StepLogits Step(Tensor embeds, Tensor positions, bool[] valid, bool[] codes, KvCache cache, long nextPosition)
    {
        long n = valid.Length;
        var (keyValid, keyText) = cache.Begin(valid, codes);
        var (cos, sin) = _rope.Compute(positions.to(Device), DType);
        var codesT = torch.tensor(codes, device: Device).view(1, n);
        var ctx = new LayerContext
        {
            Cos = cos, Sin = sin,
            CausalMask = KvCache.StepMask(keyValid, n),
            FastForwardMask = layers.Any(l => l.Kind == DecoderLayerKind.FastForward) ? KvCache.StepMask(keyText, n) : null,
            AudioCodes = codesT,
            AudioRows = codesT.flatten().nonzero().squeeze(1),
            TextRows = codesT.flatten().logical_not().nonzero().squeeze(1),
        };
        var h = embeds;
        for (int i = 0; i < layers.Count; i++) h = layers[i].Forward(h, ctx, cache.Layer(i));
        cache.Commit(nextPosition);
        return Heads(norm.forward(h[0, h.shape[1] - 1]));
    }

    /// <summary>Both heads on one normed hidden state (H).</summary>
    private StepLogits Heads(Tensor last) => new(
        audio_decoder_proj.TextHead.forward(last).to_type(ScalarType.Float32).cpu(),
        audio_decoder_proj.AudioHead.forward(last).view(Config.AudioNumCodebooks, Config.CodebookVocab).to_type(ScalarType.Float32).cpu());
}

internal static class StepLogitsScope
{
    public static StepLogits MoveToOuterDisposeScope(this StepLogits s) =>
        new(s.Text.MoveToOuterDisposeScope(), s.Audio.MoveToOuterDisposeScope());
}
