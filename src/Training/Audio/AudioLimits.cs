using System.Runtime.InteropServices;

namespace HiggsCluster.Training.Audio;

/// <summary>How long the selected part of an audio is, and the file's own rate, as known before decoding it all.</summary>
/// <param name="AtLeast">True when only a capped prefix was decoded: the audio is at least <paramref name="Seconds"/> long.</param>
public readonly record struct AudioExtent(double Seconds, int SampleRate, bool AtLeast = false);

/// <summary>
/// Limits checked before any audio is decoded or encoded: one lying header (2000 s at 1 Hz), a device or a FIFO must
/// cost an error message, not a node (HuBERT attention over a whole clip is quadratic in its length).
/// </summary>
public static class AudioLimits
{
    /// <summary>Rates outside this range are no speech recording we can train on; they are refused from the header.</summary>
    public const int MinSampleRate = 8000, MaxSampleRate = 192000;

    public static bool RateInRange(int rate) => rate is >= MinSampleRate and <= MaxSampleRate;

    /// <summary>
    /// Refuses a clip with a NaN or infinite sample (a float WAV can hold them): the encoder would turn them into
    /// all-zero codes that train silently on nothing.
    /// </summary>
    public static void RequireFinite(AudioClip clip, string name)
    {
        var s = clip.Samples;
        for (int i = 0; i < s.Length; i++)
            if (!float.IsFinite(s[i]))
                throw new AudioInputException(name,
                    $"sample {i} (at {(i / (double)clip.SampleRate).ToString("F3", System.Globalization.CultureInfo.InvariantCulture)} s) is {(float.IsNaN(s[i]) ? "NaN" : "infinite")}; audio with non-finite samples is refused");
    }

    /// <summary>
    /// Null for a regular file (or one that does not exist: the caller reports "not found"), else what it is
    /// ("a directory", "a device", "a pipe", "a socket"). Opening a FIFO blocks and reading /dev/zero never ends,
    /// so this has to be known without opening it. .NET's FileAttributes say Normal for FIFOs and devices, hence stat.
    /// </summary>
    public static string? NotRegularFile(string path)
    {
        if (Directory.Exists(path)) return "a directory";
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                // SystemNative_Stat follows links; the .NET runtime's own shim, so its FileStatus layout (Flags, Mode, ...)
                // is the same on every Unix and architecture, unlike libc's struct stat. 512 bytes is more than it writes.
                var buf = new byte[512];
                if (SystemNativeStat(path, buf) != 0) return null;
                return (BitConverter.ToInt32(buf, 4) & 0xF000) switch
                {
                    0x8000 => null,
                    0x4000 => "a directory",
                    0x2000 or 0x6000 => "a device",
                    0x1000 => "a pipe",
                    0xC000 => "a socket",
                    var t => $"of file type 0x{t:X}",
                };
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // no shim: a non-regular file has length 0, which the loaders refuse as empty before reading it
            }
        }
        return null;
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", CharSet = CharSet.Ansi)]
    private static extern int SystemNativeStat(string path, byte[] status);
}
