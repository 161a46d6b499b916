using HiggsCluster.Training;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Goldens;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Audio;

/// <summary>
/// TorchaudioExact against every audio_tokenizer golden run (default root and HIGGS_EXTRA_GOLDENS) that has a
/// <c>wave_*</c> input and a <c>resampled_16k</c> expectation (torchaudio 24 kHz → 16 kHz).
/// </summary>
[Trait("Category", "Audio")]
public sealed class ResamplerGoldenTests
{
    private const string ExpectedName = "resampled_16k";

    public static TheoryData<string> Runs()
    {
        var data = new TheoryData<string>();
        foreach (var run in ResampleRuns()) data.Add(run.Label);
        if (data.Count == 0) data.Add("<none>");
        return data;
    }

    private static IEnumerable<GoldenRun> ResampleRuns()
    {
        var roots = GoldenHarness.ResolveRoots(null, RepoPaths.DefaultGoldens);
        foreach (var run in GoldenHarness.Enumerate(roots, "audio_tokenizer"))
        {
            if (run.Run["expected"] is null) continue;
            var input = run.RunParameters["input"]?.GetValue<string>();
            if (input is null || !input.StartsWith("wave_", StringComparison.Ordinal)) continue;
            using var expected = new SafetensorsFile(run.File(run.Run["expected"]!.GetValue<string>()));
            if (!expected.Entries.ContainsKey(ExpectedName)) continue;
            yield return run;
        }
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public void TorchaudioExact_matches_golden_resampled_16k(string label)
    {
        if (label == "<none>") Assert.Skip("no audio_tokenizer golden run has both a wave_* input and resampled_16k");
        var run = ResampleRuns().Single(r => r.Label == label);
        int from = run.RunParameters["sample_rate"]?.GetValue<int>() ?? run.CaseParameters["sample_rate"]!.GetValue<int>();
        int to = run.CaseParameters["semantic_sample_rate"]?.GetValue<int>() ?? 16000;
        var input = run.RunParameters["input"]!.GetValue<string>();

        float[] wave;
        using (var inputs = new SafetensorsFile(run.InputsPath))
        using (var t = inputs.Load(input))
        {
            Assert.Equal(1, t.dim());
            wave = t.data<float>().ToArray();
        }
        float[] expected;
        using (var e = new SafetensorsFile(run.File(run.Run["expected"]!.GetValue<string>())))
        using (var t = e.Load(ExpectedName))
            expected = t.data<float>().ToArray();
        var tol = run.ToleranceFor(ExpectedName);

        var actual = Resampler.Resample(wave, from, to, ResamplerPreset.TorchaudioExact);
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0; int worstAt = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]) - tol.Rtol * Math.Abs(expected[i]);
            if (err > worst) { worst = err; worstAt = i; }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{label}: worst |error| - rtol·|expected| = {worst:G3} at {worstAt}");
        Assert.True(worst <= tol.Atol, $"{label}: worst excess error {worst:G3} at sample {worstAt} (atol {tol.Atol})");

        // The tensor (conv1d) path must agree with the span path.
        using var scope = TorchSharp.torch.NewDisposeScope();
        var viaTensor = Resampler.Resample(TorchSharp.torch.tensor(wave), from, to, ResamplerPreset.TorchaudioExact).data<float>().ToArray();
        Assert.Equal(expected.Length, viaTensor.Length);
        for (int i = 0; i < viaTensor.Length; i++)
            Assert.True(Math.Abs(viaTensor[i] - expected[i]) <= tol.Atol + tol.Rtol * Math.Abs(expected[i]),
                $"{label}: tensor path sample {i}: {viaTensor[i]} vs {expected[i]}");
    }
}
