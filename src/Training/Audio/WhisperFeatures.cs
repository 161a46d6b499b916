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
/// (log10(1e-10)). The numbers are those of the full 30 s transform while most of the work for short clips is
/// skipped.
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
        // Examples are independent (each has its own floor), so each is transformed at its own length.
        var feats = empty(n, Settings.FeatureSize, nFrames, dtype: ScalarType.Float32, device: _device);
        for (int i = 0; i < n; i++)
        {
            using var clipScope = NewDisposeScope();
            ExtractInto(clips[i], lengths[i], feats[i]);
        }
        var maskData = new int[n * nFrames];
        for (int i = 0; i < n; i++)
        {
            long ones = (lengths[i] + hop - 1) / hop;
            Array.Fill(maskData, 1, (int)(i * nFrames), (int)ones);
        }
        var mask = tensor(maskData, new long[] { n, nFrames }).to(_device);
        return new WhisperFeatureBatch(feats.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Features of one clip (its first <paramref name="length"/> samples) written into dest [mels, frames].</summary>
    private void ExtractInto(Tensor clip, long length, Tensor dest)
    {
        long nSamples = Settings.NSamples, hop = Settings.HopLength, nFrames = Settings.NbMaxFrames;
        long half = Settings.NFft / 2;
        // Frames 0..needed-1 are the only ones whose window [hop*f - half, hop*f + half) touches real samples.
        long needed = Math.Min(nFrames, (length + half + hop - 1) / hop);
        // Signal long enough that those frames never reach the right reflect padding; else the full 30 s.
        long work = Math.Min(nSamples, hop * needed + half);
        if (work + half > nSamples) work = nSamples;
        var x = zeros(work, dtype: ScalarType.Float32, device: _device);
        long l = Math.Min(length, work);
        if (l > 0) x.narrow(0, 0, l).copy_(clip.narrow(0, 0, l));
        var spec = stft(x, Settings.NFft, hop, window: _window, center: true, pad_mode: PaddingModes.Reflect, return_complex: true);
        long computed = Math.Min(spec.shape[1], nFrames); // the full transform's last frame is dropped
        // |X|^2 as re^2 + im^2: complex abs is slow on CPU and differs from it by about one ulp
        var kept = view_as_real(spec.narrow(1, 0, computed));
        var im = kept.select(-1, 1);
        var power = kept.select(-1, 0).Square().AddcmulInPlace(im, im, 1);
        var logSpec = matmul(_melFilters, power).ClampMinInPlace(1e-10).log10_();   // [mels, computed]
        // every skipped frame holds log10(1e-10), the smallest value a frame can take, so the maximum of the
        // computed frames is the maximum of the whole 30 s example
        var floor = logSpec.max().SubInPlace(8.0f);
        dest.narrow(1, 0, computed).copy_(maximum(logSpec, floor).AddInPlace(4.0f).DivInPlace(4.0f));
        if (computed < nFrames)
        {
            var silent = maximum(tensor(1e-10f, device: _device).log10(), floor).AddInPlace(4.0f).DivInPlace(4.0f);
            dest.narrow(1, computed, nFrames - computed).copy_(silent.expand(Settings.FeatureSize, nFrames - computed));
        }
    }

    public void Dispose()
    {
        _window.Dispose();
        _melFilters.Dispose();
    }
}
