using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>Everything one encode call computed, batch-first. Intermediates are null unless requested.</summary>
public sealed class EncodeResult : IDisposable
{
    public required FramePlan Plan { get; init; }
    /// <summary>(B, n_q, T) int64.</summary>
    public required Tensor Codes { get; init; }
    /// <summary>(B, quantizer_dim, T): the fc_prior output fed to the RVQ.</summary>
    public required Tensor PrequantLatent { get; init; }
    /// <summary>(B, n_q, T): squared-distance gap between the second-best and the chosen entry.</summary>
    public required Tensor CodeMargin { get; init; }
    public Tensor? AcousticLatent { get; init; }
    public Tensor? SemanticLatent { get; init; }
    /// <summary>(B, T_s, semantic_dim): mean HuBERT hidden state, every factor-th frame.</summary>
    public Tensor? SemanticFeatures { get; init; }
    /// <summary>(layers+1, B, H, semantic_dim).</summary>
    public Tensor? HubertHiddenStates { get; init; }
    /// <summary>(B, ceil(N·16000/24000)): the 16 kHz HuBERT input before the edge padding.</summary>
    public Tensor? Resampled16k { get; init; }

    public void Dispose()
    {
        foreach (var t in new[] { Codes, PrequantLatent, CodeMargin, AcousticLatent, SemanticLatent, SemanticFeatures, HubertHiddenStates, Resampled16k })
            t?.Dispose();
    }
}

/// <summary>
/// The Higgs audio tokenizer (boson-ai HiggsAudioTokenizer, original algorithm): 24 kHz waveform → (n_q, T) codes at
/// 25 frames/s, and codes → waveform. The encoder is not causal, so clips are encoded one by one or in groups of equal
/// length; nothing is ever padded to make a batch.
/// </summary>
public sealed class HiggsAudioTokenizer : IDisposable
{
    public HiggsAudioTokenizer(TokenizerWeights weights) => Weights = weights;

    public TokenizerWeights Weights { get; }
    public TokenizerSizes Sizes => Weights.Sizes;
    public int SampleRate => Sizes.SampleRate;
    public int HopLength => Sizes.HopLength;

    public static HiggsAudioTokenizer Load(string dir, string? weightsFile = null) => new(TokenizerWeights.Load(dir, weightsFile));

    /// <summary>
    /// Runs on <paramref name="device"/> from now on. Codes computed with TF32/fp16 kernels can flip near-ties, so
    /// compare GPU codes with an agreement rate, not equality (audio-spec §5.6).
    /// </summary>
    public HiggsAudioTokenizer To(Device device)
    {
        Weights.To(device);
        return this;
    }

    public FramePlan PlanFor(long samples) => FramePlan.For(Sizes, samples);

    /// <summary>Codes (n_q, T) int64 of one 24 kHz clip, exactly as upstream <c>encode(wave, sr=24000)</c>.</summary>
    public Tensor Encode(ReadOnlySpan<float> wave)
    {
        using var scope = torch.NewDisposeScope();
        var x = tensor(wave.ToArray()).unsqueeze(0);
        using var r = EncodeBatch(x, intermediates: false);
        return r.Codes[0].cpu().clone().MoveToOuterDisposeScope();
    }

    /// <summary>Encodes clips of any lengths: grouped by equal length (at most <paramref name="maxGroup"/> per forward), results in input order.</summary>
    public List<Tensor> EncodeMany(IReadOnlyList<float[]> clips, int maxGroup = 8)
    {
        if (maxGroup < 1) throw new ArgumentOutOfRangeException(nameof(maxGroup));
        var result = new Tensor[clips.Count];
        foreach (var group in Enumerable.Range(0, clips.Count).GroupBy(i => clips[i].Length))
        {
            foreach (var chunk in group.Chunk(maxGroup))
            {
                using var scope = torch.NewDisposeScope();
                var x = stack(chunk.Select(i => tensor(clips[i])).ToArray(), 0);
                using var r = EncodeBatch(x, intermediates: false);
                for (int j = 0; j < chunk.Length; j++) result[chunk[j]] = r.Codes[j].cpu().clone().MoveToOuterDisposeScope();
            }
        }
        return result.ToList();
    }

    /// <summary>
    /// Encodes a (B, N) batch of equal-length 24 kHz clips. <paramref name="resampled16k"/> (B, ceil(2N/3)) replaces the
    /// internal 24→16 kHz resampling when given (stage-wise checks). Refuses clips upstream cannot encode (N &lt; 632 for
    /// the real strides).
    /// </summary>
    public EncodeResult EncodeBatch(Tensor waves, bool intermediates = true, Tensor? resampled16k = null)
    {
        if (waves.dim() != 2) throw new ArgumentException($"waveform batch must be (batch, samples), got [{string.Join(",", waves.shape)}]");
        var plan = PlanFor(waves.shape[1]);
        if (plan.Error != null) throw new ArgumentException($"cannot encode: {plan.Error}");
        var s = Sizes;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = waves.to_type(ScalarType.Float32).to(Weights.Device).contiguous();
        long b = x.shape[0];

        var x16 = resampled16k?.to_type(ScalarType.Float32).to(Weights.Device) ?? Resample24kTo16k(x);
        if (x16.shape[0] != b || x16.shape[1] != plan.Resampled16k)
            throw new ArgumentException($"16 kHz input must be [{b},{plan.Resampled16k}], got [{string.Join(",", x16.shape)}]");
        var padded16 = F.pad(x16, [TokenizerSizes.SemanticEdgePad, TokenizerSizes.SemanticEdgePad]);
        var hidden = HubertForward.HiddenStates(Weights, padded16);          // (L+1, B, H, S)
        var features = hidden.mean([0L]);                                     // (B, H, S)
        features = features[.., TensorIndex.Slice(null, null, s.SemanticDownsampleFactor), ..];
        var semantic = SemanticEncoder.Forward(Weights, features.transpose(1, 2));

        var acoustic = DacCodec.Encode(Weights, x.unsqueeze(1));
        if (acoustic.shape[2] != semantic.shape[2])
            acoustic = DacCodec.Encode(Weights, F.pad(x, [s.RepadSamples, s.RepadSamples]).unsqueeze(1));
        long t = Math.Min(acoustic.shape[2], semantic.shape[2]);
        acoustic = acoustic[.., .., ..(int)t];
        semantic = semantic[.., .., ..(int)t];
        if (t != plan.Frames) throw new InvalidOperationException($"internal: {t} frames, frame plan says {plan.Frames}");

        var e = cat([acoustic, semantic], 1);
        var latent = CpuConv.Linear(e.transpose(1, 2), Weights["fc_prior.weight"], Weights["fc_prior.bias"]); // (B, T, Q)
        var (codes, margins) = ResidualVq.Encode(Weights, latent.reshape(b * t, s.QuantizerDim));
        var result = new EncodeResult
        {
            Plan = plan,
            Codes = codes.view(s.NQ, b, t).permute(1, 0, 2).contiguous().MoveToOuterDisposeScope(),
            PrequantLatent = latent.transpose(1, 2).contiguous().MoveToOuterDisposeScope(),
            CodeMargin = margins.view(s.NQ, b, t).permute(1, 0, 2).contiguous().MoveToOuterDisposeScope(),
            AcousticLatent = intermediates ? acoustic.contiguous().MoveToOuterDisposeScope() : null,
            SemanticLatent = intermediates ? semantic.contiguous().MoveToOuterDisposeScope() : null,
            SemanticFeatures = intermediates ? features.contiguous().MoveToOuterDisposeScope() : null,
            HubertHiddenStates = intermediates ? hidden.contiguous().MoveToOuterDisposeScope() : null,
            Resampled16k = intermediates ? x16.contiguous().MoveToOuterDisposeScope() : null,
        };
        return result;
    }

    /// <summary>The tokenizer's own 24→16 kHz step (torchaudio sinc_interp_hann, width 6, rolloff 0.99).</summary>
    public Tensor Resample24kTo16k(Tensor x) => Audio.Resampler.Resample(x, Sizes.SampleRate, Sizes.SemanticSampleRate, Audio.ResamplerPreset.TorchaudioExact);

    /// <summary>Codes (n_q, T) → waveform (hop·T) at 24 kHz, on the CPU.</summary>
    public Tensor Decode(Tensor codes)
    {
        using var scope = torch.NewDisposeScope();
        var (wave, _, _) = DecodeDetailed(codes.unsqueeze(0));
        return wave[0].cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Codes (B, n_q, T) → (waveform (B, hop·T), dequantized (B, Q, T), decoder input (B, D, T)).</summary>
    public (Tensor Waveform, Tensor Dequantized, Tensor DecoderInput) DecodeDetailed(Tensor codes)
    {
        if (codes.dim() != 3) throw new ArgumentException($"codes must be (batch, n_q, T), got [{string.Join(",", codes.shape)}]");
        if (codes.dtype is not (ScalarType.Int64 or ScalarType.Int32)) throw new ArgumentException($"codes must be integers, got {codes.dtype}");
        var s = Sizes;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        long b = codes.shape[0], t = codes.shape[2];
        if (t < 1) throw new ArgumentException("codes have no frames");
        if (codes.shape[1] != s.NQ) throw new ArgumentException($"codes have {codes.shape[1]} codebooks, the tokenizer has {s.NQ}");
        var flat = codes.to_type(ScalarType.Int64).to(Weights.Device).permute(1, 0, 2).reshape(s.NQ, b * t);
        var deq = ResidualVq.Decode(Weights, flat).view(b, t, s.QuantizerDim);
        var dec = F.linear(deq, Weights["fc_post2.weight"], Weights["fc_post2.bias"]).transpose(1, 2);
        var wave = DacCodec.Decode(Weights, dec).squeeze(1);
        return (wave.contiguous().MoveToOuterDisposeScope(), deq.transpose(1, 2).contiguous().MoveToOuterDisposeScope(),
            dec.contiguous().MoveToOuterDisposeScope());
    }

    public void Dispose() => Weights.Dispose();
}
