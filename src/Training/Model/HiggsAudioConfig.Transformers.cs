using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Model;

public sealed partial record HiggsAudioConfig
{
    /// <summary>config.json in the layout the checkpoint came in (<see cref="Layout"/>).</summary>
    public JsonObject ToLayoutJson() => Layout == WeightsLayout.Boson ? ToBosonJson() : ToTransformersJson();

    /// <summary>
    /// config.json in the flat transformers ≥ 5.3 <c>higgs_audio_v2</c> layout (the fields this port reads, so
    /// <see cref="Parse"/> gives this config back). That layout can only say "every layer dual-FFN, no tower, delay
    /// pattern, audio-in codes", so other configurations are refused rather than written as something else.
    /// </summary>
    public JsonObject ToTransformersJson()
    {
        var t = Text;
        bool allDual = AdapterType != AudioAdapterType.Stack && DualFfnLayers.Count == t.NumHiddenLayers
                       && DualFfnLayers.OrderBy(x => x).SequenceEqual(Enumerable.Range(0, t.NumHiddenLayers));
        if (!allDual || !SkipAudioTower || EncodeWhisperEmbed || !EncodeAudioInTokens || !UseDelayPattern
            || UseAudioOutEmbedProjector || UseAudioOutSelfAttention || AudioEmbedAvg)
            throw new InvalidOperationException("this configuration has no transformers higgs_audio_v2 form (it needs every layer dual-FFN, no audio tower, delay pattern, audio-in codes)");
        var rope = new JsonObject { ["rope_theta"] = t.RopeTheta };
        if (t.RopeScaling is { } r)
        {
            rope["rope_type"] = r.RopeType; rope["factor"] = r.Factor; rope["low_freq_factor"] = r.LowFreqFactor;
            rope["high_freq_factor"] = r.HighFreqFactor; rope["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings;
        }
        else rope["rope_type"] = "default";
        return new JsonObject
        {
            ["architectures"] = new JsonArray("HiggsAudioV2ForConditionalGeneration"), ["model_type"] = "higgs_audio_v2",
            ["vocab_size"] = t.VocabSize, ["hidden_size"] = t.HiddenSize, ["intermediate_size"] = t.IntermediateSize,
            ["num_hidden_layers"] = t.NumHiddenLayers, ["num_attention_heads"] = t.NumAttentionHeads,
            ["num_key_value_heads"] = t.NumKeyValueHeads, ["head_dim"] = t.HeadDim, ["hidden_act"] = "silu",
            ["rms_norm_eps"] = t.RmsNormEps, ["rope_parameters"] = rope, ["attention_bias"] = false, ["mlp_bias"] = false,
            ["tie_word_embeddings"] = false,
            ["num_codebooks"] = AudioNumCodebooks, ["codebook_size"] = CodebookVocab,
            ["audio_stream_bos_id"] = AudioStreamBosId, ["audio_stream_eos_id"] = AudioStreamEosId,
            ["audio_in_token_id"] = AudioInTokenIdx, ["audio_token_id"] = AudioOutTokenIdx, ["pad_token_id"] = PadTokenId,
        };
    }
}
