using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Engine;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Generation;

/// <summary>Samples at validation on the engine loop: files, report, TensorBoard, and no effect on what is trained.</summary>
[Collection("Engine"), Trait("Category", "Generate")]
public sealed class ValidationSamplesTests
{
    private static TrainOptions Options(TempDir tmp, string name)
    {
        var o = EngineWorkspace.Options(tmp.File(name), maxSteps: 4);
        o.ValSteps = 2; o.SaveSteps = 0; o.Plots = false; o.LoraDropout = 0.1;
        return o;
    }

    [Fact]
    public void Every_validation_writes_wav_and_spectrogram_per_prompt_with_tensorboard_audio_and_a_report_table()
    {
        using var tmp = new TempDir();
        var o = Options(tmp, "run");
        o.SampleTexts = new[] { "Rain wind houses.", "Green a near story." };
        o.SampleMaxSeconds = 1;
        using var s = EngineWorkspace.Open(o);
        var lines = new StringWriter();
        new TrainingRun(s, new LineProgress(lines, 100)).Run();
        foreach (var step in new[] { 0, 2, 4 })
        {
            var dir = ValidationSamples.Folder(o.OutputDir, step);
            foreach (var name in new[] { "text-1", "text-2" })
            {
                Assert.True(File.Exists(Path.Combine(dir, name + ".wav")), $"{dir}/{name}.wav missing:\n{lines}");
                Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(Path.Combine(dir, name + ".png"))[..4]);
            }
        }
        Assert.Contains("samples at step 2: 2 in", lines.ToString());
        var report = File.ReadAllText(Path.Combine(o.OutputDir, "report.md"));
        Assert.Contains("## Samples", report);
        Assert.Contains("(samples/step-0000004/text-1.wav)", report);
        var events = File.ReadAllBytes(Directory.GetFiles(Path.Combine(o.OutputDir, "tensorboard"))[0]);
        Assert.Contains("samples/text-2", System.Text.Encoding.ASCII.GetString(events));
        Assert.Contains("audio/wav", System.Text.Encoding.ASCII.GetString(events));
    }

    [Fact]
    public void Speaking_at_validation_changes_nothing_that_is_trained()
    {
        using var tmp = new TempDir();
        TrainingOutcome Train(string name, int samples)
        {
            var o = Options(tmp, name);
            o.Samples = samples; o.SampleMaxSeconds = 1;
            using var s = EngineWorkspace.Open(o);
            return new TrainingRun(s, new LineProgress(TextWriter.Null, 100)).Run();
        }
        var quiet = Train("quiet", 0);
        var spoken = Train("spoken", 2);
        Assert.True(Directory.Exists(Path.Combine(spoken.OutputDir, "samples")));
        Assert.False(Directory.Exists(Path.Combine(quiet.OutputDir, "samples")));
        var a = SafetensorsFile.ReadAll(Path.Combine(quiet.AdapterDir, "adapter_model.safetensors"));
        var b = SafetensorsFile.ReadAll(Path.Combine(spoken.AdapterDir, "adapter_model.safetensors"));
        foreach (var (k, t) in a) Assert.True(EngineWorkspace.Same(t, b[k]), k);
        Assert.Equal(quiet.LastLoss, spoken.LastLoss);
    }

    [Fact]
    public void Default_prompts_are_the_first_validation_entries_that_answer_in_audio_with_their_reference_voice()
    {
        var ws = EngineWorkspace.Workspace;
        var entries = ManifestReader.Read(ws.Data.Manifest).Where(i => i.Sample is not null).ToDictionary(i => (long)i.Index, i => i.Sample!);
        var o = new TrainOptions { Samples = 3 };
        var ids = entries.Keys.Order().ToList();
        var plan = ValidationSamples.Plan(o, entries, ids);
        Assert.Equal(3, plan.Count);
        var speaking = ids.Where(id => GenerationPrompt.FromEntry(entries[id]) is not null).Take(3).ToList();
        Assert.Equal(speaking.Select(id => $"entry-{id}"), plan.Select(p => p.Name));
        foreach (var (p, id) in plan.Zip(speaking))
        {
            var entry = entries[id];
            // the prompt is the entry without its last (target) audio turn: a cloned voice's reference stays in it
            Assert.Equal(entry.Messages.Count - 1, p.Conversation.Messages.Count);
            int audiosBefore = entry.Messages.SkipLast(1).Count(m => m.Content.Any(c => c is AudioContent));
            Assert.Equal(audiosBefore, p.Conversation.Messages.Count(m => m.Content.Any(c => c is AudioContent)));
        }
        Assert.Contains(entries.Values, e => e.Messages.Count(m => m.Role == ChatRoles.Assistant && m.Content.Any(c => c is AudioContent)) == 2);
        Assert.Empty(ValidationSamples.Plan(new TrainOptions { Samples = 0 }, entries, ids));
    }
}
