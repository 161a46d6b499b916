using System.Globalization;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Training.Generation;

/// <summary>One prompt spoken at every validation: a name (the file name) and the conversation before the answer.</summary>
public sealed record SamplePrompt(string Name, ChatMLSample Conversation);

/// <summary>A sample written at one validation.</summary>
public sealed record WrittenSample(string Name, string Wav, string Spectrogram, double Seconds, int Frames, string StopReason);

/// <summary>
/// Audio samples at validation: what the current weights say for a few prompts (<c>eval.sample_texts</c>, else the
/// first <c>eval.samples</c> validation entries, with their reference audio when they clone a voice), written as
/// <c>samples/step-NNNNNNN/NAME.wav</c> with a spectrogram PNG beside it and an audio summary in TensorBoard. Sampling
/// uses the run's seed, so two validations differ only by the weights.
/// </summary>
public static class ValidationSamples
{
    public static string Folder(string outputDir, long step) => Path.Combine(outputDir, "samples", $"step-{step:D7}");

    public static IReadOnlyList<SamplePrompt> Plan(TrainOptions o, IReadOnlyDictionary<long, ChatMLSample> entries, IReadOnlyList<long> validationIds)
    {
        var prompts = new List<SamplePrompt>();
        if (o.SampleTexts.Count > 0)
        {
            for (int i = 0; i < o.SampleTexts.Count; i++)
                prompts.Add(new SamplePrompt($"text-{i + 1}", GenerationPrompt.Messages(new GenerationRequest(o.SampleTexts[i]))));
            return prompts;
        }
        foreach (var id in validationIds)
        {
            if (prompts.Count >= o.Samples) break;
            if (!entries.TryGetValue(id, out var entry) || GenerationPrompt.FromEntry(entry) is not { } conversation) continue;
            prompts.Add(new SamplePrompt($"entry-{id}", conversation));
        }
        return prompts;
    }

    public static SamplingOptions Sampling(TrainOptions o, int sampleRate, int hop) => new SamplingOptions
    {
        Seed = (ulong)o.Seed,
        MaxNewTokens = (int)Math.Ceiling(o.SampleMaxSeconds * sampleRate / hop) + 64,
    };

    /// <summary>Generates and writes every prompt's sample for the validation at <paramref name="step"/>; a prompt that fails is reported, the others still run.</summary>
    public static IReadOnlyList<WrittenSample> Write(SpeechContext context, IReadOnlyList<SamplePrompt> prompts, SamplingOptions options,
        string outputDir, long step, TensorBoardWriter? tensorBoard, Action<string>? warn = null)
    {
        var dir = Folder(outputDir, step);
        Directory.CreateDirectory(dir);
        var written = new List<WrittenSample>();
        foreach (var p in prompts)
        {
            try
            {
                var r = context.Generate(p.Conversation, options);
                var wave = context.Decode(r.Codes);
                var wav = Path.Combine(dir, p.Name + ".wav");
                var png = Path.Combine(dir, p.Name + ".png");
                WavWriter.Write(wav, wave, context.SampleRate);
                SpectrogramPng.Write(png, wave, context.SampleRate);
                tensorBoard?.Audio(step, "samples/" + p.Name, wave, context.SampleRate);
                written.Add(new WrittenSample(p.Name, wav, png, wave.Length / (double)context.SampleRate, r.Frames, r.StopReason));
            }
            catch (Exception e) when (e is SampleException or GenerationException or InvalidDataException or IOException or ArgumentException)
            {
                warn?.Invoke($"sample {p.Name} at step {step}: {e.Message}");
            }
        }
        return written;
    }

    /// <summary>A speech context over a run's own model and data path, with the audio tokenizer loaded from the run's folder.</summary>
    public static SpeechContext Context(HiggsAudioModel model, TrainOptions o, Engine.SampleStore store, HiggsAudioTokenizer audio) =>
        new(model, TextTokenizer.Load(o.TextTokenizer), audio, store.Builder, store.Collator);

    /// <summary>The rows of report.md's samples table, newest validation first, as markdown links relative to the run folder.</summary>
    public static IEnumerable<string> ReportRows(string outputDir)
    {
        var root = Path.Combine(outputDir, "samples");
        if (!Directory.Exists(root)) yield break;
        foreach (var step in Directory.EnumerateDirectories(root, "step-*").OrderByDescending(d => d, StringComparer.Ordinal))
            foreach (var wav in Directory.EnumerateFiles(step, "*.wav").OrderBy(f => f, StringComparer.Ordinal))
            {
                var rel = Path.GetRelativePath(outputDir, wav).Replace('\\', '/');
                var png = Path.ChangeExtension(rel, ".png");
                long bytes = new FileInfo(wav).Length;
                yield return string.Create(CultureInfo.InvariantCulture,
                    $"| {long.Parse(Path.GetFileName(step)[5..], CultureInfo.InvariantCulture)} | {Path.GetFileNameWithoutExtension(wav)} | [{Path.GetFileName(wav)}]({rel}) | [spectrogram]({png}) | {bytes / 1024.0:0} KiB |");
            }
    }
}
