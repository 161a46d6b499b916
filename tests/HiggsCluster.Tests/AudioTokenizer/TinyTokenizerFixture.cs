using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

/// <summary>One tiny random tokenizer (safetensors + model.pth) written by our writer, shared by the tests.</summary>
internal static class TinyTokenizerFixture
{
    private static readonly System.Collections.Concurrent.ConcurrentBag<string> Created = new();

    static TinyTokenizerFixture()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var d in Created)
                try { Directory.Delete(d, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }

    private static readonly Lazy<(string Dir, HiggsAudioTokenizer Model)> Shared = new(() =>
    {
        var dir = NewTempDir("tiny-tokenizer");
        TinyTokenizerWriter.Write(dir, TinyTokenizerWriter.TinySizes, seed: 7, writePth: true);
        return (dir, HiggsAudioTokenizer.Load(dir));
    });

    public static string Dir => Shared.Value.Dir;
    public static HiggsAudioTokenizer Model => Shared.Value.Model;

    /// <summary>A deterministic test signal: two tones plus noise, amplitude below 1.</summary>
    public static float[] Wave(int n, int seed = 1)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = (float)(0.4 * Math.Sin(2 * Math.PI * 220 * i / 24000.0) + 0.2 * Math.Sin(2 * Math.PI * 1730 * i / 24000.0)
                           + 0.05 * (rng.NextDouble() * 2 - 1));
        return x;
    }

    public static string NewTempDir(string tag)
    {
        var d = Path.Combine(Path.GetTempPath(), $"higgs-{tag}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        Created.Add(d);
        return d;
    }

    public static long[] Longs(Tensor t) => t.to_type(ScalarType.Int64).contiguous().data<long>().ToArray();
}
