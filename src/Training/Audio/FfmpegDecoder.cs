using FFMpegCore;
using FFMpegCore.Pipes;

namespace HiggsCluster.Training.Audio;

/// <summary>
/// Decodes any format ffmpeg reads (FLAC, MP3, OGG, M4A, ...) through the ffmpeg binary, via FFMpegCore:
/// the first audio stream becomes a float32 WAV on a pipe at the native rate and with every channel kept,
/// so the down-mix (channel mean) and the offset/duration cut are the same code as for WAV files.
/// </summary>
public static class FfmpegDecoder
{
    /// <summary>Extra decoded time past offset+duration, so that the exact frame cut happens here, not in ffmpeg.</summary>
    private static readonly TimeSpan Margin = TimeSpan.FromSeconds(1);

    /// <summary>The ffmpeg executable FFMpegCore will run with these options (default: the global ones), or null when there is none.</summary>
    public static string? Find(FFOptions? options = null)
    {
        var folder = (options ?? GlobalFFOptions.Current).BinaryFolder;
        if (!string.IsNullOrEmpty(folder))
        {
            var p = Path.Combine(folder, "ffmpeg");
            return File.Exists(p) ? p : null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var p = Path.Combine(dir, "ffmpeg");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static bool IsAvailable => Find() != null;

    /// <param name="path">The file to decode.</param>
    /// <param name="name">How to name the input in errors (the path, or e.g. "raw_audio of sample 3").</param>
    /// <param name="options">FFMpegCore options (binary folder, ...); the global ones when null.</param>
    public static AudioClip Decode(string path, string name, double? offset = null, double? duration = null, FFOptions? options = null)
    {
        FrameRange.Validate(offset, duration, name);
        options ??= GlobalFFOptions.Current;
        if (Find(options) == null)
            throw new AudioInputException(name,
                $"decoding '{Path.GetExtension(path)}' audio needs ffmpeg, which is not installed or not on PATH (Debian/Ubuntu: apt-get install ffmpeg); WAV files are read without it");
        using var wav = new MemoryStream();
        var sink = new StreamPipeSink(wav) { Format = "wav" };
        var args = "-map 0:a:0 -vn -sn -dn -c:a pcm_f32le";
        if (duration is { } d)
            args += $" -t {((offset ?? 0) + d + Margin.TotalSeconds).ToString("R", System.Globalization.CultureInfo.InvariantCulture)}";
        FFMpegResult result;
        try
        {
            result = FFMpegArguments
                .FromFileInput(path, verifyExists: false)
                .OutputToPipe(sink, o => o.WithCustomArgument(args))
                .ProcessSynchronously(false, options);
        }
        catch (Exception e) when (e is not AudioInputException)
        {
            throw new AudioInputException(name, $"running ffmpeg failed: {e.Message}", e);
        }
        if (!result.Success || wav.Length == 0)
        {
            var tail = string.Join(" | ", result.StandardError.Where(l => !string.IsNullOrWhiteSpace(l)).TakeLast(3));
            throw new AudioInputException(name, $"ffmpeg could not decode it (exit code {result.ExitCode}): {tail}");
        }
        return WavReader.Read(wav, name, offset, duration);
    }
}
