using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.Text;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Generation;

/// <summary>
/// The round trip that shows the training layout and the sampler agree: a tiny model with LoRA on every projection and
/// both heads memorises one clip; greedy generation from the same prompt says exactly that clip's codes and stops by
/// itself. Repetition-aware sampling is off: it resamples a code repeated in its window at random, on purpose, and a
/// memorised clip repeats codes. Trained without the delay pattern (the seed's collator), the model's sampler cannot say it back.
/// </summary>
[Collection("Engine"), Trait("Category", "Generate")]
public sealed class MemorisationTests
{
    private static readonly Lazy<DemoWorkspace> Ws = new(() =>
        DemoWorkspace.Create(Path.Combine(Path.GetTempPath(), "higgs-memorise-" + Guid.NewGuid().ToString("N")), entries: 4, seed: 11, hidden: 32, layers: 2));

    /// <summary>A one-entry manifest: the demo's first TTS entry (system, user text, assistant audio).</summary>
    private static string OneClipManifest(TempDir tmp)
    {
        // a TTS entry: one audio, the assistant's
        var first = File.ReadLines(Ws.Value.Data.Manifest).First(l => l.Split("audio_url").Length == 2 && l.Contains("\"role\":\"assistant\",\"content\":{", StringComparison.Ordinal));
        var entry = JsonNode.Parse(first)!.AsObject();
        foreach (var m in entry["messages"]!.AsArray())
            if (m!["content"] is JsonObject c && c["audio_url"] is { } url)
                c["audio_url"] = Path.Combine(Ws.Value.Data.Folder, url.GetValue<string>());
        var path = tmp.File("one.jsonl");
        File.WriteAllText(path, entry.ToJsonString() + "\n");
        return path;
    }

    private static (TrainingSession Session, double Loss, int Steps) Memorise(TempDir tmp, string preset)
    {
        var ws = Ws.Value;
        var o = ws.TrainOptions(tmp.File("run-" + preset), maxSteps: 800);
        o.Manifest = OneClipManifest(tmp); o.DataRoot = ws.Data.Folder; o.CollatorPreset = preset; // the audio is outside the manifest's folder
        o.ValidationFraction = 0; o.BatchSize = 1; o.Lr = 1e-2; o.WarmupSteps = 5; o.Schedule = ScheduleKind.Constant;
        o.LoraR = 16; o.LoraAlpha = 32; o.Progress = "off"; o.Plots = false; o.TensorBoard = false;
        var s = TrainingSession.Open(o, TextWriter.Null);
        double loss = double.MaxValue; int step = 0;
        // below 0.05 is what the round trip needs; greedy reproduction of every code wants each teacher-forced argmax
        // right, so training goes on to 0.005 (or the step budget)
        for (; step < 800 && loss >= 0.005; step++)
        {
            using var scope = NewDisposeScope();
            var g = s.Engine.ComputeGradients(new[] { s.Store.Collate(s.TrainIds) });
            s.Engine.ApplyGradients(g, step);
            loss = g.Loss;
        }
        return (s, loss, step);
    }

    private static (GenerationResult Result, long[,] ClipCodes, SpeechContext Context) GenerateBack(TrainingSession s, HiggsAudioTokenizer audio)
    {
        var entry = s.Store.Entries[s.TrainIds[0]];
        var context = GenerateCommand.Context(s.Model, TextTokenizer.Load(s.Options.TextTokenizer), audio);
        var r = context.Generate(GenerationPrompt.FromEntry(entry)!, new SamplingOptions { Greedy = true, RasWindow = 0, MaxNewTokens = 400 });
        // the codes the model was trained to say: the entry's last audio segment, as the data path encoded it
        var built = s.Store.Get(s.TrainIds[0]).Sample;
        long start = built.AudioIdsStart[-1].item<long>();
        using var codes = built.AudioIdsConcat.narrow(1, start, built.AudioIdsConcat.shape[1] - start).contiguous();
        long k = codes.shape[0], t = codes.shape[1];
        var flat = codes.to_type(ScalarType.Int64).data<long>().ToArray();
        var clipCodes = new long[k, t];
        for (int q = 0; q < k; q++) for (int j = 0; j < t; j++) clipCodes[q, j] = flat[q * t + j];
        return (r, clipCodes, context);
    }

    [Fact(Timeout = 120_000)]
    public void A_memorised_clip_is_generated_back_code_for_code_and_stops_by_itself()
    {
        using var tmp = new TempDir();
        var (s, loss, steps) = Memorise(tmp, "model");
        using var _ = s;
        Assert.True(loss < 0.05, $"training loss {loss:0.0000} after {steps} steps");
        using var audio = HiggsAudioTokenizer.Load(s.Options.AudioTokenizer);
        var (r, clip, context) = GenerateBack(s, audio);

        Assert.Equal(clip.GetLength(0), r.Codes.GetLength(0));
        string Row(long[,] c, int q) => string.Join(" ", Enumerable.Range(0, Math.Min(16, c.GetLength(1))).Select(j => c[q, j]));
        Assert.True(clip.GetLength(1) == r.Codes.GetLength(1), $"{r.Codes.GetLength(1)} frames generated, the clip has {clip.GetLength(1)} (stop: {r.StopReason}; " +
            $"trained {steps} steps to loss {loss:0.0000})\nclip cb0: {Row(clip, 0)}\ngen  cb0: {Row(r.Codes, 0)}\nclip cb7: {Row(clip, 7)}\ngen  cb7: {Row(r.Codes, 7)}\n" +
            $"columns: {string.Join(" | ", r.DelayedColumns.Take(12).Select(c => string.Join(",", c)))}\ntext: {string.Join(",", r.TextTokens)}");
        Assert.Equal(clip.Cast<long>(), r.Codes.Cast<long>());
        // it stopped through the EOS rule and its own end of turn, not the token limit
        var special = HiggsSpecialTokens.From(TextTokenizer.Load(s.Options.TextTokenizer));
        Assert.Contains((long)special.AudioEos, r.TextTokens);
        Assert.DoesNotContain("limit", r.StopReason, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(context.Decode(clip), context.Decode(r.Codes));
    }

    [Fact(Timeout = 120_000)]
    public void Trained_without_the_delay_pattern_the_models_sampler_does_not_say_the_clip_back()
    {
        using var tmp = new TempDir();
        var (s, loss, steps) = Memorise(tmp, "seed");
        using var _ = s;
        Assert.True(loss < 0.05, $"training loss {loss:0.0000} after {steps} steps");
        using var audio = HiggsAudioTokenizer.Load(s.Options.AudioTokenizer);
        var (r, clip, _) = GenerateBack(s, audio);
        bool same = clip.GetLength(1) == r.Codes.GetLength(1) && clip.Cast<long>().SequenceEqual(r.Codes.Cast<long>());
        Assert.False(same, "the seed layout's model reproduced the clip through the delay-pattern sampler");
    }
}
