using System.Buffers.Binary;
using System.Text;
using HiggsCluster.DataLoaderNode.Building;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// A manifest with five kinds of bad entry among ten good ones trains on exactly the ten, on the single-process path
/// and on a cluster loader's path alike, each bad one reported once with its entry index and reason.
/// </summary>
[Collection("Engine"), Trait("Category", "Adversarial")]
public sealed class AdversarialRunTests : IDisposable
{
    private readonly TempDir _out = new();
    private readonly TempDir _elsewhere = new();

    public void Dispose()
    {
        _out.Dispose();
        _elsewhere.Dispose();
    }

    private sealed record Poisoned(string Manifest, long[] GoodIds, Dictionary<long, string> BadReasons);

    private static string Tts(string url) =>
        $$$"""{"messages":[{"role":"user","content":"Say this."},{"role":"assistant","content":{"type":"audio","audio_url":"{{{url}}}"}}]}""";

    /// <summary>The workspace's ten entries at even-ish positions, and after entries 1, 3, 5, 7, 9 one bad entry each.</summary>
    private Poisoned Write()
    {
        var folder = EngineWorkspace.Workspace.Data.Folder;
        var tag = Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(Path.Combine(folder, $"adv-{tag}-dir.wav"));
        var nan = new float[24000];
        nan[100] = float.NaN;
        var data = new byte[nan.Length * 4];
        for (int i = 0; i < nan.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), nan[i]);
        File.WriteAllBytes(Path.Combine(folder, $"adv-{tag}-nan.wav"), WavFileTests.RawWav(3, 1, 24000, 32, data));
        File.WriteAllBytes(Path.Combine(folder, $"adv-{tag}-liar.wav"), WavFileTests.RawWav(1, 1, 1, 16, new byte[4000]));
        var outside = _elsewhere.File("outside.wav");
        WavWriter.Write(outside, SyntheticSpeech.Generate(1.0, 24000, 2), 24000, WavSampleFormat.Pcm16);

        var bad = new (byte[] Line, string Reason)[]
        {
            (Encoding.UTF8.GetBytes(Tts($"adv-{tag}-dir.wav")), "is not a regular file (a directory)"),
            (Encoding.UTF8.GetBytes(Tts("x")).Select((b, i) => i == 5 ? (byte)0xC3 : b).ToArray(), "invalid UTF-8"),
            (Encoding.UTF8.GetBytes(Tts($"adv-{tag}-nan.wav")), "is NaN"),
            (Encoding.UTF8.GetBytes(Tts(outside)), "outside the data root"),
            (Encoding.UTF8.GetBytes(Tts($"adv-{tag}-liar.wav")), "sample rate 1 Hz is outside"),
        };
        var good = File.ReadAllLines(EngineWorkspace.Workspace.Data.Manifest).Where(l => l.Trim().Length > 0).ToArray();
        var lines = new List<byte[]>();
        var goodIds = new List<long>();
        var reasons = new Dictionary<long, string>();
        for (int g = 0, b = 0; g < good.Length; g++)
        {
            goodIds.Add(lines.Count);
            lines.Add(Encoding.UTF8.GetBytes(good[g]));
            if (g % 2 == 1 && b < bad.Length)
            {
                reasons[lines.Count] = bad[b].Reason;
                lines.Add(bad[b++].Line);
            }
        }
        var manifest = Path.Combine(folder, $"adv-{tag}.jsonl");
        File.WriteAllBytes(manifest, lines.SelectMany(l => l.Concat("\n"u8.ToArray())).ToArray());
        return new Poisoned(manifest, goodIds.ToArray(), reasons);
    }

    private TrainOptions Options(Poisoned p)
    {
        var o = EngineWorkspace.Options(_out.File("run"), maxSteps: 3);
        o.Manifest = p.Manifest;
        o.DataRoot = null; // confined to the manifest's folder all the same
        o.BatchSize = 2; o.GradAccumulation = 1; o.ValSteps = 0; o.SaveSteps = 0; o.Plots = false;
        return o;
    }

    private static void AssertEachBadEntryReported(Poisoned p, IReadOnlyList<string> warnings)
    {
        foreach (var (index, reason) in p.BadReasons)
        {
            var w = Assert.Single(warnings, w => w.Contains($"entry {index}:") || w.Contains($"entry {index} ("));
            Assert.Contains(reason, w);
            Assert.DoesNotContain('\n', w);
        }
    }

    [Fact]
    public void Single_process_training_skips_each_bad_entry_and_trains_on_all_the_good_ones()
    {
        var p = Write();
        using var s = EngineWorkspace.Open(Options(p));
        Assert.Equal(p.GoodIds, s.TrainIds.Concat(s.ValidationIds).Order());
        AssertEachBadEntryReported(p, s.Warnings);
        var r = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)).Run();
        Assert.Equal(3, r.StepsRun);
        Assert.True(double.IsFinite(r.LastLoss));
        Assert.All(r.ConsumedSamples, id => Assert.Contains(id, p.GoodIds));
    }

    [Fact]
    public void A_cluster_loader_prepares_the_good_entries_and_reports_each_bad_one()
    {
        var p = Write();
        var o = Options(p);
        var spec = HiggsCluster.Cli.Node.RunSpecFactory.From(o, "adv", shardCount: 2);
        using var builder = new SampleBatchBuilder((opts, cfg) =>
            RunData.Open(opts, cfg, new EngineWorkspace.PatternCodes(8, Training.AudioTokenizer.TinyTokenizerWriter.TinySizes.Bins)));
        var prepared = builder.Prepare(new AssignShards("adv", 1, 2, new[] { 0, 1 }, spec));
        Assert.Equal(p.GoodIds, prepared.UsableIds.Order());
        AssertEachBadEntryReported(p, prepared.Problems);
        // and a batch of good ids builds
        var delivery = builder.Build(spec, new PlanMicroBatch("adv", 1, 0, 0, 0, 0, p.GoodIds.Take(2).ToArray()));
        Assert.NotEmpty(delivery.Tensors);
    }
}
