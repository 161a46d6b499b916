using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Audio;

/// <summary>Settings of a Whisper feature extractor (defaults: openai/whisper-large-v3 preprocessor_config.json).</summary>
public sealed record WhisperFeatureSettings
{
    public int FeatureSize { get; init; } = 128;
    public int SamplingRate { get; init; } = 16000;
    public int HopLength { get; init; } = 160;
    public int ChunkLength { get; init; } = 30;
    public int NFft { get; init; } = 400;

    public int NSamples => ChunkLength * SamplingRate;
    public int NbMaxFrames => NSamples / HopLength;

    public static WhisperFeatureSettings LargeV3 { get; } = new();
}

/// <summary>Result of one extractor call: features [n, mels, frames] F32 and attention mask [n, frames] I32.</summary>
public sealed record WhisperFeatureBatch(Tensor InputFeatures, Tensor AttentionMask) : IDisposable
{
    public void Dispose() { InputFeatures.Dispose(); AttentionMask.Dispose(); }
}

/// <summary>
/// transformers' WhisperFeatureExtractor (torch path) called as
/// <c>fe(clips, sampling_rate=16000, return_attention_mask=True, padding="max_length")</c>:
/// zero right-pad / truncate to 30 s, periodic-Hann STFT with reflect centre padding, drop the last frame, power,
/// Slaney mel (float32 filters), log10 clamped at 1e-10, floor at each example's own max - 8, then (x + 4) / 4.
/// </summary>
/// <remarks>
/// Frames whose 400-sample window lies entirely in the zero padding have exactly zero power, so only the frames
/// that touch real samples are transformed; the rest are filled with the value the full computation gives them
/// (log10(1e-10)). This keeps the numbers bit-for-bit those of the full 30 s transform while skipping most of the
/// work for short clips.
/// </remarks>
public sealed class WhisperFeatureExtractor : IDisposable
{
    private readonly Tensor _window;     // [n_fft] periodic Hann, F32
    private readonly Tensor _melFilters; // [mels, bins] F32 (transposed for mel = F^T P)
    private readonly Device _device;

    public WhisperFeatureExtractor(WhisperFeatureSettings? settings = null, Device? device = null)
    {
        Settings = settings ?? WhisperFeatureSettings.LargeV3;
        _device = device ?? CPU;
        if (Settings.NSamples % Settings.HopLength != 0)
            throw new ArgumentException($"Whisper settings: n_samples {Settings.NSamples} is not a multiple of hop_length {Settings.HopLength}");
        _window = hann_window(Settings.NFft, periodic: true, dtype: ScalarType.Float32).to(_device);
        int bins = Settings.NFft / 2 + 1;
        var w = WhisperMelFilters.Create(bins, Settings.FeatureSize, 0.0, 8000.0, Settings.SamplingRate);
        var flat = new float[Settings.FeatureSize * bins];
        for (int m = 0; m < Settings.FeatureSize; m++)
            for (int b = 0; b < bins; b++)
                flat[m * bins + b] = (float)w[b, m];
        _melFilters = tensor(flat, new long[] { Settings.FeatureSize, bins }).to(_device);
    }

    public WhisperFeatureSettings Settings { get; }

    /// <summary>The float32 mel filters as [mels, frequency bins].</summary>
    public Tensor MelFilters => _melFilters;

    /// <summary>One clip (batch of one).</summary>
    public WhisperFeatureBatch Extract(float[] clip) => Extract(new[] { clip });

    /// <summary>One batched call on several clips (the -8 floor is per example).</summary>
    public WhisperFeatureBatch Extract(IReadOnlyList<float[]> clips)
    {
        using var scope = NewDisposeScope();
        var tensors = clips.Select(c => tensor(c)).ToList();
        var r = Extract(tensors);
        return new WhisperFeatureBatch(r.InputFeatures.MoveToOuterDisposeScope(), r.AttentionMask.MoveToOuterDisposeScope());
    }

    /// <summary>One batched call on 1-D float clips (any device; copied to the extractor's device as float32).</summary>
    public WhisperFeatureBatch Extract(IReadOnlyList<Tensor> clips)
    {
        if (clips.Count == 0) throw new ArgumentException("Whisper feature extractor: no clips given");
        int n = clips.Count;
        long nSamples = Settings.NSamples, hop = Settings.HopLength, nFrames = Settings.NbMaxFrames;
        long half = Settings.NFft / 2;
        var lengths = new long[n];
        for (int i = 0; i < n; i++)
        {
            if (clips[i].dim() != 1)
                throw new ArgumentException($"Whisper feature extractor: clip {i} must be 1-D, got shape [{string.Join(",", clips[i].shape)}]");
            lengths[i] = Math.Min(clips[i].shape[0], nSamples); // truncation=True
        }

        using var scope = NewDisposeScope();
        // Frames 0..needed-1 are the only ones whose window [hop*f - half, hop*f + half) touches real samples.
        long needed = lengths.Select(l => Math.Min(nFrames, (l + half + hop - 1) / hop)).Max();
        // Signal long enough that those frames never reach the right reflect padding; else the full 30 s.
        long work = Math.Min(nSamples, hop * needed + half);
        if (work + half > nSamples) work = nSamples;
        var x = zeros(n, work, dtype: ScalarType.Float32, device: _device);
        for (int i = 0; i < n; i++)
        {
            long l = Math.Min(lengths[i], work);
            if (l > 0) x[i, ..(int)l] = clips[i][..(int)l].to(ScalarType.Float32).to(_device);
        }
        var spec = stft(x, Settings.NFft, hop, window: _window, center: true, pad_mode: PaddingModes.Reflect, return_complex: true);
        long computed = Math.Min(spec.shape[2], nFrames); // the full transform's last frame is dropped
        var power = spec[.., .., ..(int)computed].abs().pow(2);
        var mel = matmul(_melFilters, power);                                   // [n, mels, computed]
        var logSpec = clamp(mel, min: 1e-10).log10();
        Tensor full;
        if (computed < nFrames)
        {
            var floorValue = tensor(1e-10f, device: _device).log10();
            full = floorValue.expand(n, Settings.FeatureSize, nFrames).contiguous();
            full[.., .., ..(int)computed] = logSpec;
        }
        else full = logSpec;
        var maxVal = full.amax(new long[] { 1, 2 }, keepdim: true);
        var feats = maximum(full, maxVal - 8.0f).add(4.0f).div(4.0f);

        var mask = zeros(n, nFrames, dtype: ScalarType.Int32);
        for (int i = 0; i < n; i++)
        {
            long ones = (lengths[i] + hop - 1) / hop;
            if (ones > 0) mask[i, ..(int)ones] = 1;
        }
        return new WhisperFeatureBatch(feats.MoveToOuterDisposeScope(), mask.to(_device).MoveToOuterDisposeScope());
    }

    public void Dispose()
    {
        _window.Dispose();
        _melFilters.Dispose();
    }
}
