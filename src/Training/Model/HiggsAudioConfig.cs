using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Model;

/// <summary>Llama-3 rope scaling ("llama3" type) or none ("default").</summary>
public sealed record RopeScaling(string RopeType, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>The Llama backbone part of the Higgs config (<c>text_config</c>).</summary>
public sealed record LlamaTextConfig
{
    public int VocabSize { get; init; }
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int HeadDim { get; init; }
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
}

/// <summary>The Whisper-style audio encoder part of the Higgs config (<c>audio_encoder_config</c>).</summary>
public sealed record AudioEncoderConfig
{
    public int NumMelBins { get; init; } = 128;
    public int EncoderLayers { get; init; } = 32;
    public int EncoderAttentionHeads { get; init; } = 20;
    public int EncoderFfnDim { get; init; } = 5120;
    public int DModel { get; init; } = 1280;
    public int MaxSourcePositions { get; init; } = 1500;
    public string ActivationFunction { get; init; } = "gelu";
    public bool ScaleEmbedding { get; init; }
}

public enum AudioAdapterType { Stack, DualFfn, DualFfnFastForward }

/// <summary>
/// HiggsAudioConfig as read from a checkpoint's config.json (boson_multimodal layout, or the flat transformers
/// higgs_audio_v2 layout). Only the fields that shape the training forward are kept; flags that imply modules
/// this port does not build are rejected on load.
/// </summary>
public sealed partial record HiggsAudioConfig
{
    public required LlamaTextConfig Text { get; init; }
    public AudioEncoderConfig? AudioEncoder { get; init; }
    public AudioAdapterType AdapterType { get; init; } = AudioAdapterType.Stack;
    public IReadOnlyList<int> DualFfnLayers { get; init; } = Array.Empty<int>();
    public bool AudioEmbedAvg { get; init; }
    public bool SkipAudioTower { get; init; }
    public bool EncodeWhisperEmbed { get; init; } = true;
    public bool EncodeAudioInTokens { get; init; }
    public bool UseDelayPattern { get; init; }
    public bool UseAudioOutEmbedProjector { get; init; }
    public bool UseAudioOutSelfAttention { get; init; }
    public int AudioNumCodebooks { get; init; } = 12;
    public int AudioCodebookSize { get; init; } = 1024;
    public int AudioStreamBosId { get; init; } = 1024;
    public int AudioStreamEosId { get; init; } = 1025;
    public long AudioInTokenIdx { get; init; } = 128015;
    public long AudioOutTokenIdx { get; init; } = 128016;
    public long PadTokenId { get; init; } = 128001;
    /// <summary>Which key layout the checkpoint uses; the model always uses the boson names internally.</summary>
    public WeightsLayout Layout { get; init; } = WeightsLayout.Boson;

    /// <summary>Per-codebook vocabulary: the codes plus stream BOS and EOS.</summary>
    public int CodebookVocab => AudioCodebookSize + 2;

    public bool BuildsAudioTower => !SkipAudioTower;

    public static HiggsAudioConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model config not found: {path}", path);
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path))!.AsObject(); }
        catch (Exception e) { throw new InvalidDataException($"{path}: not a JSON object: {e.Message}", e); }
        try { return Parse(root); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }

    public static HiggsAudioConfig Parse(JsonObject root)
    {
        var cfg = root["text_config"] is JsonObject ? ParseBoson(root) : ParseTransformersV2(root);
        cfg.Validate();
        return cfg;
    }

    private static HiggsAudioConfig ParseBoson(JsonObject root)
    {
        var j = new JsonReader(root, "");
        var text = ParseText(new JsonReader(root["text_config"]!.AsObject(), "text_config."), null);
        var adapter = j.Str("audio_adapter_type", "stack") switch
        {
            "stack" => AudioAdapterType.Stack,
            "dual_ffn" => AudioAdapterType.DualFfn,
            "dual_ffn_fast_forward" => AudioAdapterType.DualFfnFastForward,
            var other => throw new InvalidDataException($"audio_adapter_type '{other}' is not one of stack, dual_ffn, dual_ffn_fast_forward"),
        };
        if (j.Int("audio_decoder_proj_num_layers", 0) != 0)
            throw new InvalidDataException("audio_decoder_proj_num_layers > 0 is not supported (upstream never builds those layers)");
        if (j.Bool("use_rq_transformer", false))
            throw new InvalidDataException("use_rq_transformer is not supported (not implemented upstream)");
        AudioEncoderConfig? enc = null;
        if (root["audio_encoder_config"] is JsonObject eo)
        {
            var e = new JsonReader(eo, "audio_encoder_config.");
            enc = new AudioEncoderConfig
            {
                NumMelBins = e.Int("num_mel_bins", 128), EncoderLayers = e.Int("encoder_layers", 32),
                EncoderAttentionHeads = e.Int("encoder_attention_heads", 20), EncoderFfnDim = e.Int("encoder_ffn_dim", 5120),
                DModel = e.Int("d_model", 1280), MaxSourcePositions = e.Int("max_source_positions", 1500),
                ActivationFunction = e.Str("activation_function", "gelu"), ScaleEmbedding = e.Bool("scale_embedding", false),
            };
        }
        return new HiggsAudioConfig
        {
            Text = text,
            AudioEncoder = enc,
            AdapterType = adapter,
            DualFfnLayers = j.IntList("audio_dual_ffn_layers") ?? Array.Empty<int>(),
            AudioEmbedAvg = j.Bool("audio_embed_avg", false),
            SkipAudioTower = j.Bool("skip_audio_tower", false),
            EncodeWhisperEmbed = j.Bool("encode_whisper_embed", true),
            EncodeAudioInTokens = j.Bool("encode_audio_in_tokens", false),
            UseDelayPattern = j.Bool("use_delay_pattern", false),
            UseAudioOutEmbedProjector = j.Bool("use_audio_out_embed_projector", false),
            UseAudioOutSelfAttention = j.Bool("use_audio_out_self_attention", false),
            AudioNumCodebooks = j.Int("audio_num_codebooks", 12),
            AudioCodebookSize = j.Int("audio_codebook_size", 1024),
            AudioStreamBosId = j.Int("audio_stream_bos_id", 1024),
            AudioStreamEosId = j.Int("audio_stream_eos_id", 1025),
            AudioInTokenIdx = j.Int("audio_in_token_idx", 128015),
            AudioOutTokenIdx = j.Int("audio_out_token_idx", 128016),
            PadTokenId = j.Int("pad_token_id", 128001),
            Layout = WeightsLayout.Boson,
        };
    }

    /// <summary>
    /// transformers ≥ 5.3 <c>higgs_audio_v2</c>: a flat Llama config plus num_codebooks / codebook_size (which already
    /// counts stream BOS and EOS). That model is the 3B layout: every layer dual-FFN, no tower, no audio attention.
    /// </summary>
    private static HiggsAudioConfig ParseTransformersV2(JsonObject root)
    {
        var j = new JsonReader(root, "");
        var mt = j.Str("model_type", "");
        if (mt != "higgs_audio_v2")
            throw new InvalidDataException($"config has no text_config and model_type '{mt}' is not higgs_audio_v2");
        var text = ParseText(j, root["rope_parameters"] as JsonObject);
        int withSpecials = j.Int("codebook_size", 1026);
        return new HiggsAudioConfig
        {
            Text = text,
            AdapterType = AudioAdapterType.DualFfn,
            DualFfnLayers = Enumerable.Range(0, text.NumHiddenLayers).ToArray(),
            SkipAudioTower = true,
            EncodeWhisperEmbed = false,
            EncodeAudioInTokens = true,
            UseDelayPattern = true,
            AudioNumCodebooks = j.Int("num_codebooks", 8),
            AudioCodebookSize = withSpecials - 2,
            AudioStreamBosId = j.Int("audio_stream_bos_id", withSpecials - 2),
            AudioStreamEosId = j.Int("audio_stream_eos_id", withSpecials - 1),
            AudioInTokenIdx = j.Int("audio_in_token_id", 128015),
            AudioOutTokenIdx = j.Int("audio_token_id", 128016),
            PadTokenId = j.Int("pad_token_id", 128001),
            Layout = WeightsLayout.TransformersV2,
        };
    }

    private static LlamaTextConfig ParseText(JsonReader t, JsonObject? ropeParameters)
    {
        int hidden = t.Int("hidden_size", 4096), heads = t.Int("num_attention_heads", 32);
        // checked here because head_dim defaults to hidden / heads
        if (heads <= 0) throw new InvalidDataException($"num_attention_heads must be positive, got {heads}");
        var ropeNode = t.Obj("rope_scaling") ?? ropeParameters;
        double theta = t.Double("rope_theta", ropeNode?["rope_theta"]?.GetValue<double>() ?? 10000.0);
        RopeScaling? rope = null;
        if (ropeNode is not null)
        {
            var r = new JsonReader(ropeNode, "rope_scaling.");
            var type = r.Str("rope_type", r.Str("type", "default"));
            if (type == "llama3")
                rope = new RopeScaling(type, r.Double("factor", 8), r.Double("low_freq_factor", 1), r.Double("high_freq_factor", 4),
                    r.Int("original_max_position_embeddings", 8192));
            else if (type != "default")
                throw new InvalidDataException($"rope type '{type}' is not supported (llama3 or default)");
        }
        if (t.Bool("attention_bias", false) || t.Bool("mlp_bias", false))
            throw new InvalidDataException("attention_bias / mlp_bias are not supported (the Higgs backbone has no biases)");
        var act = t.Str("hidden_act", "silu");
        if (act != "silu") throw new InvalidDataException($"hidden_act '{act}' is not supported (silu)");
        return new LlamaTextConfig
        {
            VocabSize = t.Int("vocab_size", 32000),
            HiddenSize = hidden,
            IntermediateSize = t.Int("intermediate_size", 11008),
            NumHiddenLayers = t.Int("num_hidden_layers", 32),
            NumAttentionHeads = heads,
            NumKeyValueHeads = t.Int("num_key_value_heads", heads),
            HeadDim = t.Int("head_dim", hidden / heads),
            RmsNormEps = t.Double("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            RopeScaling = rope,
        };
    }

    /// <summary>Rejects combinations upstream asserts on or this port cannot build faithfully.</summary>
    public void Validate()
    {
        var t = Text;
        // sizes first, before anything divides by them or allocates from them
        foreach (var (key, value, max) in new[]
                 {
                     ("vocab_size", t.VocabSize, 4_000_000), ("hidden_size", t.HiddenSize, 65_536),
                     ("intermediate_size", t.IntermediateSize, 1 << 20), ("num_hidden_layers", t.NumHiddenLayers, 1024),
                     ("num_attention_heads", t.NumAttentionHeads, 1024), ("num_key_value_heads", t.NumKeyValueHeads, 1024),
                     ("head_dim", t.HeadDim, 4096), ("audio_num_codebooks", AudioNumCodebooks, 64),
                     ("audio_codebook_size", AudioCodebookSize, 1 << 20),
                 })
            if (value <= 0 || value > max) throw new InvalidDataException($"{key} must be within 1..{max}, got {value}");
        if (AudioEncoder is { } ae)
            foreach (var (key, value, max) in new[]
                     {
                         ("num_mel_bins", ae.NumMelBins, 1024), ("encoder_layers", ae.EncoderLayers, 1024),
                         ("encoder_attention_heads", ae.EncoderAttentionHeads, 1024), ("encoder_ffn_dim", ae.EncoderFfnDim, 1 << 20),
                         ("d_model", ae.DModel, 65_536), ("max_source_positions", ae.MaxSourcePositions, 1 << 20),
                     })
                if (value <= 0 || value > max) throw new InvalidDataException($"audio_encoder_config.{key} must be within 1..{max}, got {value}");
        if (t.NumAttentionHeads % t.NumKeyValueHeads != 0)
            throw new InvalidDataException($"num_attention_heads {t.NumAttentionHeads} is not a multiple of num_key_value_heads {t.NumKeyValueHeads}");
        if (t.HeadDim % 2 != 0) throw new InvalidDataException($"head_dim {t.HeadDim} must be even for rotary embeddings");
        if (AdapterType != AudioAdapterType.Stack && DualFfnLayers.Count == 0)
            throw new InvalidDataException("dual_ffn adapters need a non-empty audio_dual_ffn_layers");
        foreach (var l in DualFfnLayers)
            if (l < 0 || l >= t.NumHiddenLayers)
                throw new InvalidDataException($"audio_dual_ffn_layers entry {l} is outside 0..{t.NumHiddenLayers - 1}");
        if (AudioNumCodebooks <= 0 || AudioCodebookSize <= 0)
            throw new InvalidDataException("audio_num_codebooks and audio_codebook_size must be positive");
        if (BuildsAudioTower && AudioEncoder is null)
            throw new InvalidDataException("skip_audio_tower is false but there is no audio_encoder_config");
        if (BuildsAudioTower && AudioEncoder!.ActivationFunction != "gelu")
            throw new InvalidDataException($"audio encoder activation '{AudioEncoder.ActivationFunction}' is not supported (gelu)");
        if (BuildsAudioTower && AudioEncoder!.DModel % AudioEncoder.EncoderAttentionHeads != 0)
            throw new InvalidDataException("audio encoder d_model is not a multiple of encoder_attention_heads");
    }

    /// <summary>config.json in the boson_multimodal layout (the fields this port reads).</summary>
    public JsonObject ToBosonJson()
    {
        var t = Text;
        var text = new JsonObject
        {
            ["model_type"] = "llama", ["vocab_size"] = t.VocabSize, ["hidden_size"] = t.HiddenSize,
            ["intermediate_size"] = t.IntermediateSize, ["num_hidden_layers"] = t.NumHiddenLayers,
            ["num_attention_heads"] = t.NumAttentionHeads, ["num_key_value_heads"] = t.NumKeyValueHeads,
            ["head_dim"] = t.HeadDim, ["hidden_act"] = "silu", ["rms_norm_eps"] = t.RmsNormEps, ["rope_theta"] = t.RopeTheta,
            ["attention_bias"] = false, ["mlp_bias"] = false,
        };
        if (t.RopeScaling is { } r)
            text["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = r.RopeType, ["factor"] = r.Factor, ["low_freq_factor"] = r.LowFreqFactor,
                ["high_freq_factor"] = r.HighFreqFactor, ["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings,
            };
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("HiggsAudioModel"), ["model_type"] = "higgs_audio",
            ["text_config"] = text,
            ["audio_adapter_type"] = AdapterType switch
            {
                AudioAdapterType.Stack => "stack", AudioAdapterType.DualFfn => "dual_ffn", _ => "dual_ffn_fast_forward",
            },
            ["audio_dual_ffn_layers"] = new JsonArray(DualFfnLayers.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["audio_decoder_proj_num_layers"] = 0, ["audio_embed_avg"] = AudioEmbedAvg,
            ["skip_audio_tower"] = SkipAudioTower, ["encode_whisper_embed"] = EncodeWhisperEmbed,
            ["encode_audio_in_tokens"] = EncodeAudioInTokens, ["use_delay_pattern"] = UseDelayPattern,
            ["use_audio_out_embed_projector"] = UseAudioOutEmbedProjector,
            ["use_audio_out_self_attention"] = UseAudioOutSelfAttention, ["use_rq_transformer"] = false,
            ["audio_num_codebooks"] = AudioNumCodebooks, ["audio_codebook_size"] = AudioCodebookSize,
            ["audio_stream_bos_id"] = AudioStreamBosId, ["audio_stream_eos_id"] = AudioStreamEosId,
            ["audio_in_token_idx"] = AudioInTokenIdx, ["audio_out_token_idx"] = AudioOutTokenIdx,
            ["pad_token_id"] = PadTokenId,
        };
        if (AudioEncoder is { } e)
            o["audio_encoder_config"] = new JsonObject
            {
                ["model_type"] = "higgs_audio_encoder", ["num_mel_bins"] = e.NumMelBins, ["encoder_layers"] = e.EncoderLayers,
                ["encoder_attention_heads"] = e.EncoderAttentionHeads, ["encoder_ffn_dim"] = e.EncoderFfnDim,
                ["d_model"] = e.DModel, ["max_source_positions"] = e.MaxSourcePositions,
                ["activation_function"] = e.ActivationFunction, ["scale_embedding"] = e.ScaleEmbedding,
            };
        return o;
    }

    /// <summary>Small JSON accessor that accepts 0/1 for booleans (some configs store flags as integers).</summary>
    private readonly struct JsonReader(JsonObject o, string prefix)
    {
        public string Str(string k, string def) => o[k] is JsonValue v && v.TryGetValue<string>(out var s) ? s : def;

        public int Int(string k, int def)
        {
            if (o[k] is not JsonValue v) return def;
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue) return (int)l;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue) return (int)d;
            throw new InvalidDataException($"{prefix}{k} must be an integer within 32 bits, got {v.ToJsonString()}");
        }

        public double Double(string k, double def)
        {
            if (o[k] is not JsonValue v) return def;
            if (v.TryGetValue<double>(out var d)) return d;
            throw new InvalidDataException($"{prefix}{k} must be a number, got {v.ToJsonString()}");
        }

        public bool Bool(string k, bool def)
        {
            if (o[k] is not JsonValue v) return def;
            if (v.TryGetValue<bool>(out var b)) return b;
            if (v.TryGetValue<int>(out var i) && (i == 0 || i == 1)) return i == 1;
            throw new InvalidDataException($"{prefix}{k} must be a boolean, got {v.ToJsonString()}");
        }

        public JsonObject? Obj(string k) => o[k] as JsonObject;

        public int[]? IntList(string k)
        {
            if (o[k] is null) return null;
            if (o[k] is not JsonArray a) throw new InvalidDataException($"{prefix}{k} must be a list of integers");
            return a.Select(x => x!.GetValue<int>()).ToArray();
        }
    }
}

public enum WeightsLayout { Boson, TransformersV2 }
