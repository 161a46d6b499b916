namespace HiggsCluster.Training.Audio;

/// <summary>
/// librosa.load(path, sr=None, mono=True, offset, duration) for our inputs: mono float32 at the file's own rate.
/// WAV (RIFF/RF64) is read in-process; everything else goes through ffmpeg.
/// </summary>
public static class AudioLoader
{
    private static readonly HashSet<string> WavExtensions = new(StringComparer.OrdinalIgnoreCase) { ".wav", ".wave" };

    public static AudioClip Load(string path, double? offset = null, double? duration = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        FrameRange.Validate(offset, duration, path);
        CheckRegularFile(path);
        if (IsWav(path))
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            return WavReader.Read(fs, path, offset, duration);
        }
        if (new FileInfo(path).Length == 0) throw new AudioInputException(path, "the file is empty (0 bytes)");
        return FfmpegDecoder.Decode(path, path, offset, duration);
    }

    /// <summary>Refuses what is not a regular file before it is opened (a FIFO would block, /dev/zero never ends).</summary>
    public static void CheckRegularFile(string path)
    {
        if (AudioLimits.NotRegularFile(path) is { } kind) throw new AudioInputException(path, $"is not a regular file ({kind})");
        if (!File.Exists(path)) throw new AudioInputException(path, "file not found");
    }

    /// <summary>
    /// The length of the part <paramref name="offset"/>/<paramref name="duration"/> selects and the file's rate, without
    /// decoding it: a WAV's header is read; other formats are decoded by ffmpeg only up to <paramref name="capSeconds"/>
    /// (plus a second, so "longer" is seen), or not at all when the selected duration is already within the cap.
    /// Null when nothing had to be decoded to know the length is within the cap.
    /// </summary>
    public static AudioExtent? Probe(string path, double? offset, double? duration, double? capSeconds)
    {
        ArgumentNullException.ThrowIfNull(path);
        FrameRange.Validate(offset, duration, path);
        CheckRegularFile(path);
        if (IsWav(path))
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 12);
            return WavExtent(fs, path, offset, duration);
        }
        if (new FileInfo(path).Length == 0) throw new AudioInputException(path, "the file is empty (0 bytes)");
        return CappedExtent(capSeconds, duration, cap => FfmpegDecoder.Decode(path, path, offset, cap));
    }

    /// <summary><see cref="Probe"/> for the bytes of a whole audio file (<c>raw_audio</c>).</summary>
    public static AudioExtent? ProbeBytes(byte[] data, string? nameForErrors, double? offset, double? duration, double? capSeconds)
    {
        var name = CheckBytes(data, nameForErrors, offset, duration);
        if (IsWav(data, nameForErrors))
        {
            using var ms = new MemoryStream(data, writable: false);
            return WavExtent(ms, name, offset, duration);
        }
        return CappedExtent(capSeconds, duration, cap => LoadBytes(data, nameForErrors, offset, cap));
    }

    /// <summary>The name to report, after the checks every read of audio bytes makes first.</summary>
    private static string CheckBytes(byte[] data, string? nameForErrors, double? offset, double? duration)
    {
        ArgumentNullException.ThrowIfNull(data);
        var name = string.IsNullOrEmpty(nameForErrors) ? "audio bytes" : nameForErrors;
        FrameRange.Validate(offset, duration, name);
        if (data.Length == 0) throw new AudioInputException(name, "the audio data is empty (0 bytes)");
        return name;
    }

    private static bool IsWav(byte[] data, string? nameForErrors) =>
        WavReader.LooksLikeWav(data) || (nameForErrors != null && WavExtensions.Contains(Path.GetExtension(nameForErrors)));

    private static AudioExtent WavExtent(Stream s, string name, double? offset, double? duration)
    {
        var info = WavReader.ReadInfo(s, name);
        // the rate first: a frame range at 1 Hz (or 0 frames) says nothing useful
        if (!AudioLimits.RateInRange(info.SampleRate)) return new AudioExtent(0, info.SampleRate);
        var (_, count) = FrameRange.Select(info.Frames, info.SampleRate, offset, duration, name);
        return new AudioExtent(count / (double)info.SampleRate, info.SampleRate);
    }

    private static AudioExtent? CappedExtent(double? capSeconds, double? duration, Func<double, AudioClip> decode)
    {
        if (capSeconds is not { } cap || duration <= cap) return null;
        double limit = cap + 1;
        var clip = decode(duration is { } d ? Math.Min(d, limit) : limit);
        return new AudioExtent(clip.DurationSeconds, clip.SampleRate, AtLeast: clip.DurationSeconds >= limit - 1e-6);
    }

    /// <summary>Load, then resample to <paramref name="targetRate"/> with the HighQuality preset (librosa.load(sr=targetRate)).</summary>
    public static AudioClip LoadAt(string path, int targetRate, double? offset = null, double? duration = null) =>
        Load(path, offset, duration).ResampleTo(targetRate, ResamplerPreset.HighQuality);

    /// <summary>
    /// Decodes the bytes of a whole audio file (any supported format). <paramref name="nameForErrors"/> names the
    /// source in messages; its extension, if any, is kept for ffmpeg's format probing.
    /// </summary>
    public static AudioClip LoadBytes(byte[] data, string? nameForErrors = null, double? offset = null, double? duration = null)
    {
        var name = CheckBytes(data, nameForErrors, offset, duration);
        if (IsWav(data, nameForErrors))
        {
            using var ms = new MemoryStream(data, writable: false);
            return WavReader.Read(ms, name, offset, duration);
        }
        // ffmpeg gets a real file: some containers (M4A with the index at the end) cannot be read from a pipe.
        var ext = nameForErrors != null ? Path.GetExtension(nameForErrors) : "";
        var tmp = Path.Combine(Path.GetTempPath(), $"higgs-audio-{Guid.NewGuid():N}{(ext.Length is > 1 and <= 8 ? ext : ".bin")}");
        try
        {
            File.WriteAllBytes(tmp, data);
            return FfmpegDecoder.Decode(tmp, name, offset, duration);
        }
        finally
        {
            try { File.Delete(tmp); } catch (IOException) { }
        }
    }

    /// <summary>The <c>raw_audio</c> field of a ChatML audio content: base64 of a whole audio file.</summary>
    public static AudioClip LoadBase64(string base64, string? nameForErrors = null, double? offset = null, double? duration = null)
    {
        var name = string.IsNullOrEmpty(nameForErrors) ? "raw_audio" : nameForErrors;
        if (string.IsNullOrWhiteSpace(base64)) throw new AudioInputException(name, "raw_audio is empty");
        byte[] data;
        try { data = Convert.FromBase64String(base64.Trim()); }
        catch (FormatException e) { throw new AudioInputException(name, "raw_audio is not valid base64", e); }
        return LoadBytes(data, name, offset, duration);
    }

    /// <summary>A WAV by its first bytes, or by its extension (so a damaged .wav gets a WAV error, not an ffmpeg one).</summary>
    private static bool IsWav(string path)
    {
        if (WavExtensions.Contains(Path.GetExtension(path))) return true;
        Span<byte> head = stackalloc byte[12];
        using var fs = File.OpenRead(path);
        int n = fs.ReadAtLeast(head, 12, throwOnEndOfStream: false);
        return WavReader.LooksLikeWav(head[..n]);
    }
}
