namespace HiggsCluster.Training.Audio;

/// <summary>librosa's offset/duration semantics: start = int(offset·sr), length = int(duration·sr), both at the native rate.</summary>
public static class FrameRange
{
    public static (long Start, long Count) Select(long totalFrames, int sampleRate, double? offset, double? duration, string name)
    {
        Validate(offset, duration, name);
        long start = offset is { } o ? (long)Math.Floor(o * sampleRate) : 0;
        double seconds = (double)totalFrames / sampleRate;
        if (totalFrames == 0) throw new AudioInputException(name, "the audio is empty (0 samples)");
        if (start >= totalFrames)
            throw new AudioInputException(name, $"offset {offset:0.###} s is at or beyond the end of the audio ({seconds:0.###} s)");
        long count = totalFrames - start;
        if (duration is { } d) count = Math.Min(count, (long)Math.Floor(d * sampleRate));
        if (count <= 0)
            throw new AudioInputException(name, $"duration {duration} s is shorter than one sample at {sampleRate} Hz");
        return (start, count);
    }

    public static void Validate(double? offset, double? duration, string name)
    {
        if (offset is { } o && (double.IsNaN(o) || double.IsInfinity(o) || o < 0))
            throw new AudioInputException(name, $"offset must be a finite number of seconds >= 0, got {o}");
        if (duration is { } d && (double.IsNaN(d) || double.IsInfinity(d) || d <= 0))
            throw new AudioInputException(name, $"duration must be a finite number of seconds > 0, got {d}");
    }
}
