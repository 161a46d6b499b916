using System.Text.Json.Nodes;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The HuBERT semantic model's shape, from a transformers HubertConfig (hubert_config.json).</summary>
public sealed record HubertSizes(
    int[] ConvDim, int[] ConvKernel, int[] ConvStride,
    int Hidden, int Layers, int Heads, int Intermediate,
    int PosConvKernel, int PosConvGroups, double LayerNormEps)
{
    /// <summary>bosonai/hubert_base (HuBERT-base), used when a tokenizer folder carries no hubert_config.json.</summary>
    public static HubertSizes Base { get; } = new(
        Enumerable.Repeat(512, 7).ToArray(), [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2],
        768, 12, 12, 3072, 128, 16, 1e-5);

    public static HubertSizes FromJson(JsonObject c, string source)
    {
        // The tokenizer only uses the eval-mode post-LN, group-norm HuBERT family; anything else would silently differ.
        Require(c, "feat_extract_norm", "group", source);
        RequireBool(c, "do_stable_layer_norm", false, source);
        RequireBool(c, "feat_proj_layer_norm", true, source);
        RequireBool(c, "conv_bias", false, source);
        Require(c, "feat_extract_activation", "gelu", source);
        Require(c, "hidden_act", "gelu", source);
        if (c["use_weighted_layer_sum"] is JsonValue w && w.GetValue<bool>())
            throw new InvalidDataException($"{source}: use_weighted_layer_sum=true is not supported");
        if (c["conv_pos_batch_norm"] is JsonValue bn && bn.GetValue<bool>())
            throw new InvalidDataException($"{source}: conv_pos_batch_norm=true is not supported");
        int[] Ints(string k) => (c[k] as JsonArray ?? throw Missing(k)).Select(x => x!.GetValue<int>()).ToArray();
        int Int(string k) => c[k]?.GetValue<int>() ?? throw Missing(k);
        InvalidDataException Missing(string k) => new($"{source}: missing '{k}'");
        var s = new HubertSizes(Ints("conv_dim"), Ints("conv_kernel"), Ints("conv_stride"),
            Int("hidden_size"), Int("num_hidden_layers"), Int("num_attention_heads"), Int("intermediate_size"),
            Int("num_conv_pos_embeddings"), Int("num_conv_pos_embedding_groups"),
            c["layer_norm_eps"]?.GetValue<double>() ?? 1e-5);
        if (s.ConvDim.Length != s.ConvKernel.Length || s.ConvDim.Length != s.ConvStride.Length)
            throw new InvalidDataException($"{source}: conv_dim, conv_kernel and conv_stride differ in length");
        if (s.Hidden % s.Heads != 0) throw new InvalidDataException($"{source}: hidden_size {s.Hidden} not divisible by num_attention_heads {s.Heads}");
        return s;
    }

    private static void Require(JsonObject c, string key, string value, string source)
    {
        var v = c[key]?.GetValue<string>();
        if (v != null && v != value) throw new InvalidDataException($"{source}: {key}='{v}' is not supported (need '{value}')");
    }

    private static void RequireBool(JsonObject c, string key, bool value, string source)
    {
        if (c[key] is JsonValue v && v.GetValue<bool>() != value)
            throw new InvalidDataException($"{source}: {key}={v.GetValue<bool>()} is not supported (need {value})");
    }

    public JsonObject ToJson() => new()
    {
        ["model_type"] = "hubert",
        ["architectures"] = new JsonArray("HubertModel"),
        ["conv_dim"] = new JsonArray(ConvDim.Select(x => (JsonNode)x).ToArray()),
        ["conv_kernel"] = new JsonArray(ConvKernel.Select(x => (JsonNode)x).ToArray()),
        ["conv_stride"] = new JsonArray(ConvStride.Select(x => (JsonNode)x).ToArray()),
        ["conv_bias"] = false,
        ["feat_extract_norm"] = "group",
        ["feat_extract_activation"] = "gelu",
        ["feat_proj_layer_norm"] = true,
        ["do_stable_layer_norm"] = false,
        ["hidden_act"] = "gelu",
        ["hidden_size"] = Hidden,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["intermediate_size"] = Intermediate,
        ["num_conv_pos_embeddings"] = PosConvKernel,
        ["num_conv_pos_embedding_groups"] = PosConvGroups,
        ["layer_norm_eps"] = LayerNormEps,
        ["num_feat_extract_layers"] = ConvDim.Length,
        ["mask_time_prob"] = 0.0,
    };
}

/// <summary>
/// Every size the tokenizer needs. Upstream hard-codes the DAC encoder width (64), the DAC decoder width (1024) and the
/// semantic dim (768); here they come from the weight shapes so tiny test models work with the same code.
/// </summary>
public sealed record TokenizerSizes(
    int D, int CodebookDim, int Bins, int NQ, int[] Ratios, int SampleRate, int SemanticSampleRate,
    int EncoderWidth, int DecoderWidth, HubertSizes Hubert)
{
    public const string KnownTeacher = "hubert_base_general";

    /// <summary>bosonai/higgs-audio-v2-tokenizer: D 256, codebook_dim 64, 1024 bins, 8 codebooks, strides 8/5/4/2/3, HuBERT-base.</summary>
    public static TokenizerSizes Real { get; } = new(256, 64, 1024, 8, [8, 5, 4, 2, 3], 24000, 16000, 64, 1024, HubertSizes.Base);

    /// <summary>Upstream pads 160 samples of 16 kHz audio on each side before HuBERT.</summary>
    public const int SemanticEdgePad = 160;

    /// <summary>The HuBERT hop upstream assumes when it derives the semantic downsample factor.</summary>
    public const int SemanticHop = 320;

    public int SemanticDim => Hubert.Hidden;
    public int QuantizerDim => D + SemanticDim;
    public int HopLength => Ratios.Aggregate(1, (a, b) => a * b);
    public int SemanticDownsampleFactor => (int)(HopLength / ((double)SampleRate / SemanticSampleRate) / SemanticHop);

    /// <summary>Zero padding (each side, at the acoustic rate) of upstream's second acoustic pass.</summary>
    public int RepadSamples => SemanticEdgePad * SemanticDownsampleFactor;

    /// <summary>Stable text used when hashing a tokenizer identity (the code cache).</summary>
    public string Describe() =>
        $"D={D};cbdim={CodebookDim};bins={Bins};nq={NQ};ratios={string.Join(',', Ratios)};sr={SampleRate};ssr={SemanticSampleRate};" +
        $"enc={EncoderWidth};dec={DecoderWidth};hubert={string.Join(',', Hubert.ConvDim)}|{string.Join(',', Hubert.ConvKernel)}|" +
        $"{string.Join(',', Hubert.ConvStride)}|{Hubert.Hidden}|{Hubert.Layers}|{Hubert.Heads}|{Hubert.Intermediate}|" +
        $"{Hubert.PosConvKernel}|{Hubert.PosConvGroups}|{Hubert.LayerNormEps:R}";
}

/// <summary>The fields of the original (July 2025) tokenizer config.json that the encode/decode path depends on.</summary>
public sealed record TokenizerConfig(int D, int CodebookDim, int Bins, int NQ, int[] Ratios, int SampleRate, string SemanticTeacher)
{
    public static TokenizerConfig FromJson(JsonObject c, string source)
    {
        int Int(string k) => c[k]?.GetValue<int>() ?? throw new InvalidDataException($"{source}: missing '{k}'");
        if (c["bins"] is not JsonValue) throw new InvalidDataException($"{source}: 'bins' must be an integer (FSQ level lists are not supported)");
        var ratios = (c["ratios"] as JsonArray ?? throw new InvalidDataException($"{source}: missing 'ratios'"))
            .Select(x => x!.GetValue<int>()).ToArray();
        var teacher = c["semantic_techer"]?.GetValue<string>() ?? TokenizerSizes.KnownTeacher;
        if (teacher != TokenizerSizes.KnownTeacher)
            throw new InvalidDataException($"{source}: semantic_techer '{teacher}' is not supported (only '{TokenizerSizes.KnownTeacher}')");
        if (c["semantic_sample_rate"] is JsonValue ssr && ssr.GetValue<int>() != 16000)
            throw new InvalidDataException($"{source}: semantic_sample_rate {ssr} is not supported (HuBERT runs at 16000)");
        if (c["vq_scale"] is JsonValue vs && vs.GetValue<int>() != 1)
            throw new InvalidDataException($"{source}: vq_scale {vs} is not supported");
        if (c["downsample_mode"] is JsonValue dm && dm.GetValue<string>() != "step_down")
            throw new InvalidDataException($"{source}: downsample_mode '{dm}' is not supported");
        var cbd = c["codebook_dim"]?.GetValue<int>() ?? throw new InvalidDataException($"{source}: missing 'codebook_dim'");
        return new TokenizerConfig(Int("D"), cbd, Int("bins"), Int("n_q"), ratios, Int("sample_rate"), teacher);
    }

    public JsonObject ToJson() => new()
    {
        ["n_filters"] = 32,
        ["D"] = D,
        ["codebook_dim"] = CodebookDim,
        ["target_bandwidths"] = new JsonArray(0.5, 1, 1.5, 2, 4),
        ["ratios"] = new JsonArray(Ratios.Select(x => (JsonNode)x).ToArray()),
        ["sample_rate"] = SampleRate,
        ["bins"] = Bins,
        ["n_q"] = NQ,
        ["semantic_techer"] = SemanticTeacher,
    };
}
