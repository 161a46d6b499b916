using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// Engine tests share the process-wide torch RNG (LoRA dropout draws from it), so they run alone, not beside other
/// test classes.
/// </summary>
[CollectionDefinition("Engine", DisableParallelization = true)]
public sealed class EngineCollection;

/// <summary>
/// A demo workspace made once per test run (tiny tokenizers, tiny random checkpoint, 10 entries), with a fast
/// deterministic code source in place of the audio tokenizer: codes follow the clip's length (25 frames/s) and a
/// learnable pattern, so the engine tests do not pay for audio encoding.
/// </summary>
public static class EngineWorkspace
{
    private static readonly Lazy<DemoWorkspace> Shared = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), "higgs-engine-tests-" + Guid.NewGuid().ToString("N"));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(root, true); } catch (IOException) { } };
        return DemoWorkspace.Create(root, entries: 10, seed: 3, hidden: 32, layers: 2);
    });

    public static DemoWorkspace Workspace => Shared.Value;

    public static TrainOptions Options(string outputDir, int maxSteps)
    {
        var o = Workspace.TrainOptions(outputDir, maxSteps);
        o.Progress = "off";
        return o;
    }

    public sealed class PatternCodes(int codebooks, int bins) : IAudioCodeSource
    {
        public int SampleRate => 24000;
        public int NumCodebooks => codebooks;

        public Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate)
        {
            var clip = loadAtRate();
            int frames = Math.Max(2, (int)(clip.Samples.Length / (double)clip.SampleRate * 25));
            var c = new long[codebooks * frames];
            for (int q = 0; q < codebooks; q++)
                for (int t = 0; t < frames; t++)
                    c[q * frames + t] = (t * (q + 1) + q * 3) % bins;
            return tensor(c).reshape(codebooks, frames);
        }
    }

    /// <summary>Bit-level equality of values (NaN equals NaN), same shape.</summary>
    public static bool Same(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && (a.eq(b) | (a.isnan() & b.isnan())).all().item<bool>();

    public static TrainingSession Open(TrainOptions o) =>
        TrainingSession.Open(o, TextWriter.Null, new PatternCodes(8, Training.AudioTokenizer.TinyTokenizerWriter.TinySizes.Bins));
}
