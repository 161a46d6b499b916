using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.Model;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// The samples of one run, for whichever loop validates (the engine loop, or the cluster worker that writes
/// checkpoints): the prompts chosen once, the audio tokenizer loaded at the first validation that speaks.
/// </summary>
public sealed class RunSamples(TrainOptions o, HiggsAudioModel model, SampleStore store, IReadOnlyList<SamplePrompt> prompts) : IDisposable
{
    private HiggsAudioTokenizer? _audio;
    private SpeechContext? _context;

    public IReadOnlyList<SamplePrompt> Prompts => prompts;

    /// <summary>Null when the run asks for no samples or has nothing to say.</summary>
    public static RunSamples? For(TrainOptions o, HiggsAudioModel model, SampleStore store, IReadOnlyList<long> validationIds)
    {
        if (o.Samples == 0 && o.SampleTexts.Count == 0) return null;
        var prompts = ValidationSamples.Plan(o, store.Entries, validationIds);
        return prompts.Count == 0 ? null : new RunSamples(o, model, store, prompts);
    }

    public IReadOnlyList<WrittenSample> Write(long step, TensorBoardWriter? tensorBoard, Action<string>? warn)
    {
        _audio ??= HiggsAudioTokenizer.Load(o.AudioTokenizer).To(model.Device);
        _context ??= ValidationSamples.Context(model, o, store, _audio);
        var options = ValidationSamples.Sampling(o, _audio.SampleRate, _audio.HopLength);
        return ValidationSamples.Write(_context, prompts, options, Path.GetFullPath(o.OutputDir), step, tensorBoard, warn);
    }

    public void Dispose() => _audio?.Dispose();
}
