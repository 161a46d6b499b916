using System.Text.RegularExpressions;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Node;
using HiggsCluster.Planning;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>
/// Mixed datasets through the engine: the demo manifest cut into two corpora (6 + 4 entries) with weights 3 : 1,
/// trained, resumed, validated and reported per corpus; config mistakes named by their item.
/// </summary>
[Collection("Engine"), Trait("Category", "Engine")]
public sealed class MixedDataRunTests
{
    /// <summary>The demo manifest's lines [from, from + count) as a manifest in <paramref name="dir"/> (audio paths made absolute).</summary>
    private static string Cut(string dir, string name, int from, int count)
    {
        var folder = EngineWorkspace.Workspace.Data.Folder;
        var lines = File.ReadAllLines(EngineWorkspace.Workspace.Data.Manifest).Where(l => l.Trim().Length > 0).Skip(from).Take(count)
            .Select(l => Regex.Replace(l, "\"audio_url\":\\s*\"", m => m.Value + folder.Replace("\\", "\\\\") + "/"));
        var path = Path.Combine(dir, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    private static TrainOptions Mixed(TempDir tmp, string run, string? secondRoot = null)
    {
        var o = EngineWorkspace.Options(tmp.File(run), maxSteps: 6);
        o.BatchSize = 2; o.GradAccumulation = 2; o.ValSteps = 3; o.SaveSteps = 0; o.Plots = false; o.LoraDropout = 0.2;
        o.Manifests = new[]
        {
            new Corpus(Cut(tmp.Path, "a.jsonl", 0, 6), 3),
            new Corpus(Cut(tmp.Path, "b.jsonl", 6, 4), 1, secondRoot),
        };
        o.Manifest = "";
        return o;
    }

    [Fact]
    public void A_mixed_run_stopped_and_resumed_consumes_what_one_go_consumes_and_reports_each_corpus()
    {
        using var tmp = new TempDir();
        TrainingOutcome full, second;
        using (var s = EngineWorkspace.Open(Mixed(tmp, "full")))
        {
            Assert.Equal(new[] { 0, 1 }, s.TrainIds.Select(DataMix.CorpusOf).Distinct().Order()); // both corpora present
            Assert.NotNull(s.Plan.CorpusDraws);
            full = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)).Run();
        }
        using (var s = EngineWorkspace.Open(Mixed(tmp, "split"))) new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { StopAfterSteps = 4 }.Run();
        using (var s = EngineWorkspace.Open(Mixed(tmp, "split"))) second = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { ResumeFrom = "latest" }.Run();
        Assert.Equal(6, second.NextStep);
        Assert.Equal(full.ConsumedSamples, second.ConsumedSamples);
        Assert.Equal(File.ReadAllBytes(Path.Combine(full.AdapterDir, LoraAdapter.WeightsFile)), File.ReadAllBytes(Path.Combine(second.AdapterDir, LoraAdapter.WeightsFile)));

        var report = File.ReadAllText(full.ReportPath);
        Assert.Contains("from 2 corpora sampled by weight", report);
        Assert.Matches(@"a\.jsonl` \(weight 3, 75 %\): \d+ training / \d+ validation samples, \d+ drawn per epoch", report);
        Assert.Matches(@"b\.jsonl` \(weight 1, 25 %\): \d+ training / \d+ validation samples, \d+ drawn per epoch", report);
    }

    [Fact(Timeout = 300_000)]
    public void The_in_process_cluster_trains_a_mixed_dataset_as_the_engine_loop_does()
    {
        using var tmp = new TempDir();
        TrainOptions Opts(string run) { var o = Mixed(tmp, run); o.Ranks = 2; o.GradAccumulation = 1; o.MaxSteps = 4; o.ValSteps = 2; return o; }
        TrainingOutcome reference;
        using (var s = TrainingSession.Open(Opts("single"), TextWriter.Null)) reference = new TrainingRun(s, new LineProgress(TextWriter.Null, 1000)).Run();
        // loaders read every corpus, the coordinator plans with the weights of the submitted config, workers check the plan
        var r = InProcessCluster.Train(Opts("cluster"), workers: 2, new LineProgress(TextWriter.Null, 1000), timeout: TimeSpan.FromMinutes(4));
        Assert.Equal(4, r.NextStep);
        Assert.Equal(reference.ConsumedSamples.Order(), r.ConsumedSamples.Order());
        Assert.Contains(r.ConsumedSamples, id => DataMix.CorpusOf(id) == 1);
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference.AdapterDir, LoraAdapter.WeightsFile)), File.ReadAllBytes(Path.Combine(r.AdapterDir, LoraAdapter.WeightsFile)));
        Assert.Contains("from 2 corpora sampled by weight", File.ReadAllText(r.ReportPath));
    }

    [Fact]
    public void Resume_refuses_a_mix_with_other_weights()
    {
        using var tmp = new TempDir();
        using (var s = EngineWorkspace.Open(Mixed(tmp, "run"))) new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { StopAfterSteps = 2 }.Run();
        var o = Mixed(tmp, "run");
        o.Manifests = new[] { o.Manifests[0] with { Weight = 1 }, o.Manifests[1] with { Weight = 3 } };
        using var s2 = EngineWorkspace.Open(o);
        Assert.Equal("--resume", Assert.Throws<TrainConfigException>(() => new TrainingRun(s2, new LineProgress(TextWriter.Null, 1)) { ResumeFrom = "latest" }.Run()).Key);
    }

    [Fact]
    public void A_corpus_whose_audio_leaves_its_own_data_root_has_no_sample_and_is_named()
    {
        using var tmp = new TempDir();
        Directory.CreateDirectory(tmp.File("elsewhere"));
        var e = Assert.Throws<TrainConfigException>(() => EngineWorkspace.Open(Mixed(tmp, "run", secondRoot: tmp.File("elsewhere"))));
        Assert.Equal("data.manifests[1].path", e.Key);
    }

    [Fact]
    public void Data_validate_counts_each_corpus_of_a_config()
    {
        using var tmp = new TempDir();
        var o = Mixed(tmp, "run");
        var yaml = tmp.File("mix.yaml");
        File.WriteAllText(yaml, $"""
            data:
              manifests:
                - {"{"}path: a.jsonl, weight: 3{"}"}
                - path: b.jsonl
                  weight: 1
                  data_root: {EngineWorkspace.Workspace.Data.Folder}
              data_root: {EngineWorkspace.Workspace.Data.Folder}
              text_tokenizer: {o.TextTokenizer}
            """);
        var report = DataValidator.ValidateCorpora(TrainConfig.Load(yaml, []).Corpora(), weighted: true, TextTokenizer.Load(o.TextTokenizer), new SampleBuilderOptions());
        Assert.Equal(new long[] { 6, 4 }, report.Corpora.Select(c => c.Entries));
        Assert.Equal(new long[] { 6, 4 }, report.Corpora.Select(c => c.ValidEntries));
        Assert.Equal(10, report.Entries);

        var output = new StringWriter();
        Assert.Equal(0, CommandTable.Dispatch(new[] { "data", "validate", "--config", yaml }, output, TextWriter.Null));
        var text = output.ToString();
        Assert.Contains("corpora: 2", text);
        Assert.Contains($"{tmp.File("a.jsonl")}: 6 entries (6 valid, 0 with errors)", text);
        Assert.Contains("weight 3 (75 % of the draws)", text);
        Assert.Contains($"{tmp.File("b.jsonl")}: 4 entries (4 valid, 0 with errors)", text);
    }

    [Fact]
    public void Mixed_config_errors_name_the_item_and_the_list_round_trips_as_cluster_nodes_read_it()
    {
        using var tmp = new TempDir();
        var good = Mixed(tmp, "run");
        good.Validate();
        var back = TrainOptions.FromResolved(good.Resolved());
        Assert.Equal(good.Manifests, back.Manifests);
        Assert.Equal(good.Plan(new[] { 0L, 1, 2, DataMix.IdOf(1, 0) }).StepSamples(0), back.Plan(new[] { 0L, 1, 2, DataMix.IdOf(1, 0) }).StepSamples(0));

        string Key(Action<TrainOptions> change) { var o = good.Clone(); change(o); return Assert.Throws<TrainConfigException>(() => o.Validate()).Key; }
        Assert.Equal("data.manifests[1].weight", Key(o => o.Manifests = new[] { o.Manifests[0], o.Manifests[1] with { Weight = 0 } }));
        Assert.Equal("data.manifests[0].path", Key(o => o.Manifests = new[] { o.Manifests[0] with { Path = "" }, o.Manifests[1] }));
        Assert.Equal("data.manifests[0].path", Key(o => o.Manifests = new[] { o.Manifests[0] with { Path = tmp.File("missing.jsonl") }, o.Manifests[1] }));
        Assert.Equal("data.manifests", Key(o => o.Manifest = o.Manifests[0].Path));
        Assert.Equal("data.manifest", Key(o => o.Manifests = Array.Empty<Corpus>()));

        var yaml = tmp.File("c.yaml");
        File.WriteAllText(yaml, "data:\n  manifests:\n    - path: a.jsonl\n      weight: 0.7\n      data_root: .\n    - path: b.jsonl\n      weight: heavy\n");
        Assert.Equal("data.manifests[1].weight", Assert.Throws<TrainConfigException>(() => TrainConfig.Load(yaml, [])).Key);
        File.WriteAllText(yaml, "data:\n  manifests:\n    - path: a.jsonl\n      weight: 0.7\n      data_root: .\n    - path: b.jsonl\n");
        var loaded = TrainConfig.Load(yaml, []);
        Assert.Equal(new[] { new Corpus(tmp.File("a.jsonl"), 0.7, tmp.Path), new Corpus(tmp.File("b.jsonl"), 1) }, loaded.Manifests); // relative to the YAML file
        File.WriteAllText(yaml, "data:\n  manifests:\n    - path: a.jsonl\n      weight: 0\n");
        var zero = TrainConfig.Load(yaml, []);
        Assert.Equal("data.manifests[0].weight", Assert.Throws<TrainConfigException>(() => zero.Validate(checkFiles: false)).Key);
        Assert.Equal("data.manifests[0].zone", Assert.Throws<TrainConfigException>(() => TrainConfig.Load(null, [KeyValuePair.Create("data.manifests", "[{\"path\":\"a\",\"zone\":1}]")])).Key);
    }
}
