using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

/// <summary>
/// Pre-flight check of a whole manifest: every entry parsed, prepared, its audio found, decoded and measured, its
/// length checked. Nothing stops at the first problem: the report lists every one with its entry and field.
/// </summary>
public static class DataValidator
{
    public static ValidationReport Validate(string manifestPath, TextTokenizer tokenizer, SampleBuilderOptions options,
                                            IAudioCodeSource? codes = null, Action<long>? progress = null, int maxEntryBytes = ManifestReader.DefaultMaxEntryBytes)
    {
        var report = new ValidationReport();
        var confined = options with { KeepWhisperWaveforms = false, DataRoot = SampleBuilderOptions.RootFor(options.DataRoot, manifestPath) };
        Fill(report, manifestPath, new SampleBuilder(tokenizer, codes ?? new FrameCountProbe(), confined), progress, maxEntryBytes);
        return report;
    }

    /// <summary>
    /// Every corpus of a mixed dataset into one report, each counted on its own (<see cref="ValidationReport.Corpora"/>);
    /// a corpus's own data root replaces <paramref name="options"/>' one.
    /// </summary>
    public static ValidationReport ValidateCorpora(IReadOnlyList<Planning.Corpus> corpora, bool weighted, TextTokenizer tokenizer, SampleBuilderOptions options,
                                                   IAudioCodeSource? codes = null, Action<long>? progress = null, int maxEntryBytes = ManifestReader.DefaultMaxEntryBytes)
    {
        var report = new ValidationReport();
        codes ??= new FrameCountProbe();
        foreach (var c in corpora)
        {
            report.BeginCorpus(c.Path, weighted ? c.Weight : null);
            var builder = new SampleBuilder(tokenizer, codes, options with { KeepWhisperWaveforms = false, DataRoot = SampleBuilderOptions.RootFor(c.DataRoot ?? options.DataRoot, c.Path) });
            Fill(report, c.Path, builder, progress, maxEntryBytes);
        }
        return report;
    }

    private static void Fill(ValidationReport report, string manifestPath, SampleBuilder builder, Action<long>? progress, int maxEntryBytes)
    {
        foreach (var item in ManifestReader.Read(manifestPath, maxEntryBytes))
        {
            progress?.Invoke(item.Index);
            if (item.Error is { } err)
            {
                report.AddInvalid(new[] { new EntryProblem(err.Index, err.Field, err.Message) });
                continue;
            }
            using var scope = torch.NewDisposeScope();
            try
            {
                var built = builder.Build(item.Index, item.Sample!);
                report.AddValid(built.Positions, built.Prepared.AudioContents.Count, built.AudioSeconds);
            }
            catch (SampleException e)
            {
                report.AddInvalid(new[] { e.ToProblem() });
            }
            catch (Exception e) when (SampleException.IsPerEntry(e))
            {
                report.AddInvalid(new[] { SampleException.Wrap(item.Index, "messages", e).ToProblem() });
            }
        }
    }

    /// <summary>
    /// Validation does not need codes, only their count: this decodes the audio (so unreadable files are caught)
    /// and returns an all-zero code tensor with the frame count the Higgs tokenizer gives for that length.
    /// </summary>
    private sealed class FrameCountProbe : IAudioCodeSource
    {
        public int SampleRate => 24000;
        public int NumCodebooks => 8;
        public double FrameRate => 25;

        public Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate)
        {
            var clip = audio.Load();
            if (clip.Samples.Length == 0) throw new AudioInputException(audio.Describe, "contains no samples");
            long n24 = (long)Math.Ceiling(clip.Samples.Length * (double)SampleRate / clip.SampleRate);
            // Higgs tokenizer frame count: T = ceil((floor((ceil(2N/3) - 80) / 320) + 1) / 2); it refuses N < 632
            if (n24 < 632) throw new AudioInputException(audio.Describe, $"is too short to encode ({clip.DurationSeconds * 1000:F1} ms; the audio tokenizer needs at least 632 samples at 24 kHz)");
            long m = (2 * n24 + 2) / 3;
            long h = (m - 80) / 320 + 1;
            long t = (h + 1) / 2;
            return zeros(NumCodebooks, t, dtype: ScalarType.Int64);
        }
    }
}
