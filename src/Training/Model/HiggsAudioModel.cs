using HiggsCluster.Training.Collation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>What the training forward returns (upstream HiggsAudioModelOutputWithPast, training fields only).</summary>
public sealed record HiggsAudioOutput(
    Tensor Logits,                    // (B,L,V) model dtype
    Tensor AudioLogits,               // (N_out,K,C) fp32
    Tensor? ExpandedLabels,           // (B,L) long, unshifted
    Tensor ExpandedInputIds,          // (B,L) long
    Tensor AttentionMask,             // (B,L) long (merged)
    Tensor PositionIds,               // (B,L) long
    Tensor AudioOutMask,              // (B,L) bool
    Tensor AudioInMask,               // (B,L) bool
    Tensor AudioInDiscreteCodesMask); // (B,L) bool

/// <summary>audio_decoder_proj: the text and audio heads.</summary>
public sealed class DecoderProjector : nn.Module
{
    private readonly Projection text_lm_head;
    private readonly Projection audio_lm_head;

    public Projection TextHead => text_lm_head;
    public Projection AudioHead => audio_lm_head;

    public DecoderProjector(HiggsAudioConfig c, ScalarType dtype, Device device) : base("audio_decoder_proj")
    {
        text_lm_head = new Projection(c.Text.HiddenSize, c.Text.VocabSize, false, dtype, device);
        audio_lm_head = new Projection(c.Text.HiddenSize, (long)c.AudioNumCodebooks * c.CodebookVocab, false, dtype, device);
        RegisterComponents();
    }
}

/// <summary>
/// Higgs Audio v2 (boson_multimodal HiggsAudioModel), training forward only. Child names equal the checkpoint keys,
/// so <c>state_dict()</c> keys (without LoRA) are exactly the checkpoint's.
/// </summary>
public sealed partial class HiggsAudioModel : nn.Module
{
    private readonly EmbeddingTable embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
    private readonly AudioTower? audio_tower;
    private readonly AudioFeatureProjector? audio_encoder_proj;
    private readonly DecoderProjector audio_decoder_proj;
    private readonly Projection? audio_out_embed_projector;
    private readonly EmbeddingTable audio_codebook_embeddings;
    private readonly RotaryEmbedding _rope;

    public HiggsAudioConfig Config { get; }
    public ScalarType DType { get; }
    public Device Device { get; }
    public IReadOnlyList<DecoderLayer> Layers => layers.ToList();

    /// <summary>
    /// Recompute each decoder layer in the backward pass instead of keeping its activations (see
    /// <see cref="LayerRecompute"/>). Only applies while grad is enabled; results and gradients are unchanged.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    public HiggsAudioModel(HiggsAudioConfig config, ScalarType dtype, Device device) : base("higgs_audio")
    {
        config.Validate();
        Config = config; DType = dtype; Device = device;
        var t = config.Text;
        embed_tokens = new EmbeddingTable(t.VocabSize, t.HiddenSize, dtype, device);
        var dual = config.DualFfnLayers.ToHashSet();
        var list = new DecoderLayer[t.NumHiddenLayers];
        for (int j = 0; j < list.Length; j++)
        {
            var kind = config.AdapterType switch
            {
                AudioAdapterType.Stack => DecoderLayerKind.Plain,
                AudioAdapterType.DualFfn => dual.Contains(j) ? DecoderLayerKind.DualFfn : DecoderLayerKind.Plain,
                _ => dual.Contains(j) ? DecoderLayerKind.DualFfn : DecoderLayerKind.FastForward,
            };
            list[j] = new DecoderLayer(t, kind, kind == DecoderLayerKind.DualFfn && config.UseAudioOutSelfAttention, dtype, device);
        }
        layers = nn.ModuleList(list);
        norm = new RmsNorm(t.HiddenSize, t.RmsNormEps, dtype, device);
        if (config.BuildsAudioTower)
        {
            audio_tower = new AudioTower(config.AudioEncoder!, dtype, device);
            audio_encoder_proj = new AudioFeatureProjector(config.AudioEncoder!.DModel, t.HiddenSize, dtype, device);
        }
        audio_decoder_proj = new DecoderProjector(config, dtype, device);
        if (config.UseAudioOutEmbedProjector)
            audio_out_embed_projector = new Projection(t.HiddenSize, t.HiddenSize, false, dtype, device);
        audio_codebook_embeddings = new EmbeddingTable((long)config.AudioNumCodebooks * config.CodebookVocab, t.HiddenSize, dtype, device);
        _rope = new RotaryEmbedding(t);
        RegisterComponents();
    }

    /// <summary>Every Linear of the model with its module path (the places LoRA can attach).</summary>
    public IEnumerable<(string Path, Projection Module)> Projections() =>
        named_modules().Where(m => m.module is Projection).Select(m => (m.name, (Projection)m.module));

    /// <summary>Parameters that belong to the checkpoint (everything except LoRA branches).</summary>
    public IEnumerable<(string Name, Parameter Param)> BaseParameters() =>
        named_parameters().Where(p => !IsLoraName(p.name)).Select(p => (p.name, p.parameter));

    public IEnumerable<(string Name, Parameter Param)> LoraParameters() =>
        named_parameters().Where(p => IsLoraName(p.name)).Select(p => (p.name, p.parameter));

    public static bool IsLoraName(string name) => name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    /// <summary>Sum (or mean) of the K codebook embeddings of each column: id = code + k·(codebook_size+2).</summary>
    public Tensor EmbedAudioIds(Tensor audioIds, string field)
    {
        int k = Config.AudioNumCodebooks, c = Config.CodebookVocab;
        if (audioIds.dim() != 2 || audioIds.shape[0] != k)
            throw new InvalidDataException($"{field} has shape [{string.Join(",", audioIds.shape)}], expected [{k}, N]");
        if (audioIds.shape[1] > 0)
        {
            long lo = audioIds.min().item<long>(), hi = audioIds.max().item<long>();
            if (lo < 0 || hi >= c) throw new InvalidDataException($"{field} holds codes outside [0, {c - 1}] (min {lo}, max {hi})");
        }
        var shift = HeldScalars.Arange(k, ScalarType.Int64, audioIds.device).Times(c).unsqueeze(-1);
        var e = audio_codebook_embeddings.forward(audioIds.Plus(shift));
        e = Config.AudioEmbedAvg ? e.mean(new long[] { 0 }) : e.sum(dim: 0);
        return audio_out_embed_projector is null ? e : audio_out_embed_projector.forward(e);
    }

    public HiggsAudioOutput Forward(HiggsBatch batch)
    {
        var (merged, h) = DecoderHidden(batch);
        var logits = audio_decoder_proj.TextHead.forward(h);
        long bsz = h.shape[0], len = h.shape[1], hid = h.shape[2];
        var outRows = merged.AudioOutMask.flatten().nonzero().squeeze(1);
        var audioHidden = h.reshape(bsz * len, hid).index_select(0, outRows);
        var audioLogits = audio_decoder_proj.AudioHead.forward(audioHidden)
            .view(-1, Config.AudioNumCodebooks, Config.CodebookVocab).to_type(ScalarType.Float32);

        return new HiggsAudioOutput(logits, audioLogits, merged.Labels, merged.InputIds, merged.AttentionMask,
            merged.PositionIds, merged.AudioOutMask, merged.AudioInMask, merged.AudioInDiscreteCodesMask);
    }

    /// <summary>The training forward up to the final norm: the merged sequence and its (B,L,H) hidden states.</summary>
    private (MergedSequence Merged, Tensor Hidden) DecoderHidden(HiggsBatch batch)
    {
        var merged = EmbedAndMerge(batch, roundTo: 8, leftPadding: batch.InputIds.shape[0] == 1);
        var codes = merged.AudioInDiscreteCodesMask | merged.AudioOutMask;
        var valid = merged.AttentionMask.Ne(0);
        bool anyPad = !valid.all().item<bool>();
        var (cos, sin) = _rope.Compute(merged.PositionIds, DType);
        var flatCodes = codes.flatten();
        var ctx = new LayerContext
        {
            Cos = cos, Sin = sin,
            CausalMask = anyPad ? Attention.BuildMask(valid) : null,
            FastForwardMask = layers.Any(l => l.Kind == DecoderLayerKind.FastForward) ? Attention.BuildMask(valid & codes.logical_not()) : null,
            AudioAttentionMask = layers.Any(l => l.HasAudioAttention) ? Attention.BuildMask(valid & codes, codes) : null,
            AudioCodes = codes,
            AudioRows = flatCodes.nonzero().squeeze(1),
            TextRows = flatCodes.logical_not().nonzero().squeeze(1),
        };

        var h = merged.Embeds;
        bool checkpoint = GradientCheckpointing && is_grad_enabled();
        foreach (var layer in layers) h = checkpoint ? LayerRecompute.Run(layer, h, ctx) : layer.Forward(h, ctx);
        return (merged, norm.forward(h));
    }

    /// <summary>
    /// Embeddings of the text, Whisper features, audio-in codes and audio-out columns, merged into one sequence
    /// (<see cref="SequenceMerge"/>) with the given padding rule.
    /// </summary>
    private MergedSequence EmbedAndMerge(HiggsBatch batch, int roundTo, bool leftPadding)
    {
        var dev = Device;
        var inputIds = batch.InputIds.to(dev);
        var inputsEmbeds = embed_tokens.forward(inputIds);

        Tensor? feats = null, featLens = null;
        if (audio_tower is not null && batch.AudioFeatures is { } af && af.shape[0] > 0)
        {
            var mask = batch.AudioFeatureAttentionMask ?? throw new InvalidDataException("audio_features is given without audio_feature_attention_mask");
            if (mask.shape[0] != af.shape[0]) throw new InvalidDataException($"audio_feature_attention_mask has {mask.shape[0]} rows, audio_features {af.shape[0]}");
            mask = mask.to(dev);
            feats = audio_encoder_proj!.forward(audio_tower.Forward(af.to(dev), mask));
            featLens = AudioTower.OutputLengths(mask.to_type(ScalarType.Int64).sum(dim: -1));
        }
        Tensor? audioIn = null;
        if (Config.EncodeAudioInTokens && batch.AudioInIds is { } ai && ai.shape[^1] > 0)
            audioIn = EmbedAudioIds(ai.to(dev), "audio_in_ids");
        Tensor? audioOut = null;
        if (batch.AudioOutIds is { } ao && ao.shape[^1] > 0)
            audioOut = EmbedAudioIds(ao.to(dev), "audio_out_ids");

        var merged = SequenceMerge.Merge(inputsEmbeds, inputIds, batch.AttentionMask, batch.LabelIds,
            feats, featLens, audioIn, batch.AudioInIdsStart, audioOut, batch.AudioOutIdsStart,
            Config.AudioInTokenIdx, Config.AudioOutTokenIdx, Config.PadTokenId, roundTo, leftPadding);

        if (batch.LabelAudioIds is { } la && audioOut is not null && la.shape[^1] != audioOut.shape[0])
            throw new InvalidDataException($"label_audio_ids has {la.shape[^1]} columns but audio_out_ids has {audioOut.shape[0]}");
        return merged;
    }
}
