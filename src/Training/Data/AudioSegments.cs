using System.Globalization;
using HiggsCluster.Training.Audio;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

/// <summary>
/// The audio of manifest entries: resolving a content to a file or inline bytes (inside the data root), decoding it
/// and encoding it into codes, every failure reported as a <see cref="SampleException"/> naming entry and field.
/// </summary>
public sealed class AudioSegments(IAudioCodeSource codes, SampleBuilderOptions options)
{
    public SampleBuilderOptions Options { get; } = options;

    public AudioRef Resolve(long entry, string field, AudioContent content)
    {
        byte[]? raw;
        try { raw = content.RawAudioBytes(); }
        catch (FormatException) { throw new SampleException(entry, field + ".raw_audio", "is not valid base64"); }
        var audio = raw is not null
            ? new AudioRef(null, raw, content.Offset, content.Duration, field)
            : ResolvePath(entry, field, content.ResolvedPath ?? content.AudioUrl, content.Offset, content.Duration);
        return audio with { Seconds = CheckLimits(entry, raw is not null ? field + ".raw_audio" : field + ".audio_url", audio) };
    }

    /// <summary>The label audio of <paramref name="content"/> (its <c>audio_label_url</c>), cut like the audio itself.</summary>
    public AudioRef ResolveLabel(long entry, string field, AudioContent content)
    {
        var audio = ResolvePath(entry, field + "." + AudioContent.LabelUrlKey, content.ResolvedLabelPath ?? content.LabelUrl, content.Offset, content.Duration);
        return audio with { Seconds = CheckLimits(entry, audio.Field, audio) };
    }

    /// <summary>
    /// Limits before work: the file must be a regular file, and its header's rate and (selected) length within
    /// bounds, before anything decodes, hashes or encodes it. The code cache reads the whole file and the encoder's
    /// attention is quadratic in the clip, so a 4 KB WAV claiming 2000 s at 1 Hz, /dev/zero or a FIFO would otherwise
    /// take the node down; here they are one entry's error.
    /// </summary>
    /// <returns>The selected length in seconds when it is known without decoding (for the sequence-length estimate).</returns>
    private double? CheckLimits(long entry, string field, AudioRef audio)
    {
        var max = Options.MaxAudioSeconds;
        AudioExtent? extent;
        try
        {
            extent = audio.Path is { } p
                ? AudioLoader.Probe(p, audio.Offset, audio.Duration, max)
                : AudioLoader.ProbeBytes(audio.Bytes!, audio.Describe, audio.Offset, audio.Duration, max);
        }
        catch (AudioInputException e) { throw new SampleException(entry, field, e.Message, e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new SampleException(entry, field, $"cannot read {audio.Describe}: {e.Message}", e); }
        catch (Exception e) when (SampleException.IsPerEntry(e)) { throw SampleException.Wrap(entry, field, e); }
        if (extent is not { } x) return audio.Duration;
        if (!AudioLimits.RateInRange(x.SampleRate))
            throw new SampleException(entry, field,
                $"sample rate {x.SampleRate} Hz is outside the supported {AudioLimits.MinSampleRate}..{AudioLimits.MaxSampleRate} Hz");
        // the encoder's and Whisper's rates: a cached code would otherwise skip the first and crash on the second
        foreach (var to in new[] { codes.SampleRate, Options.WhisperSampleRate })
            if (PolyphaseBank.Refusal(x.SampleRate, to) is { } why) throw new SampleException(entry, field, why);
        if (max is { } m && x.Seconds > m)
            throw new SampleException(entry, field,
                $"{(x.AtLeast ? "over " : "")}{x.Seconds.ToString("F1", CultureInfo.InvariantCulture)} s is longer than data.max_audio_seconds ({m.ToString(CultureInfo.InvariantCulture)})");
        return x.Seconds;
    }

    private AudioRef ResolvePath(long entry, string field, string? path, double? offset, double? duration)
    {
        if (string.IsNullOrEmpty(path)) throw new SampleException(entry, field + ".audio_url", "is empty and there is no raw_audio");
        var full = Path.GetFullPath(path);
        if (Options.DataRoot is { } root) CheckUnderRoot(entry, field + ".audio_url", full, root);
        return new AudioRef(full, null, offset, duration, field);
    }

    /// <summary>Refuses paths that leave the data root, by '..' or through a symbolic link.</summary>
    public static void CheckUnderRoot(long entry, string field, string fullPath, string root)
    {
        // with the separator, so '/data' does not hold '/database'; the filesystem root already ends with it
        static string Dir(string p) => p.EndsWith(Path.DirectorySeparatorChar) ? p : p + Path.DirectorySeparatorChar;
        var rootFull = Dir(Path.GetFullPath(root));
        var rootReal = Dir(RealPath(rootFull));
        if (!fullPath.StartsWith(rootFull, StringComparison.Ordinal))
            throw new SampleException(entry, field, $"path '{fullPath}' is outside the data root '{rootFull}'");
        var real = RealPath(fullPath);
        if (!real.StartsWith(rootReal, StringComparison.Ordinal))
            throw new SampleException(entry, field, $"path '{fullPath}' leads outside the data root through a symbolic link (to '{real}')");
    }

    /// <summary>The path with every symbolic link on it resolved (parts that do not exist are kept as written).</summary>
    private static string RealPath(string path)
    {
        var parts = Path.GetFullPath(path).Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var current = Path.DirectorySeparatorChar.ToString();
        for (int i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            for (int hops = 0; info.Exists && info.LinkTarget != null && hops < 40; hops++)
            {
                next = Path.GetFullPath(info.LinkTarget, Path.GetDirectoryName(next)!);
                info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            }
            current = next;
        }
        return current;
    }

    public static AudioClip Load(long entry, AudioRef audio)
    {
        try
        {
            var clip = audio.Load();
            if (clip.Samples.Length == 0) throw new AudioInputException(audio.Describe, "contains no samples");
            return clip;
        }
        catch (AudioInputException e) { throw new SampleException(entry, audio.Field, e.Message, e); }
        catch (Exception e) when (e is not SampleException && SampleException.IsPerEntry(e)) { throw SampleException.Wrap(entry, audio.Field, e); }
    }

    /// <summary>Codes of <paramref name="audio"/>, decoding it at the encoder's rate only when the code source needs it.</summary>
    public Tensor Encode(long entry, AudioRef audio, Func<AudioClip>? load = null)
    {
        load ??= () => Load(entry, audio).ResampleTo(codes.SampleRate);
        return EncodeWith(entry, audio, load);
    }

    private Tensor EncodeWith(long entry, AudioRef audio, Func<AudioClip> load)
    {
        try { return codes.Codes(audio, load); }
        catch (SampleException) { throw; }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or AudioInputException or IOException)
        { throw new SampleException(entry, audio.Field, $"cannot encode {audio.Describe}: {e.Message}", e); }
        catch (Exception e) when (SampleException.IsPerEntry(e)) { throw SampleException.Wrap(entry, audio.Field, e); }
    }
}
