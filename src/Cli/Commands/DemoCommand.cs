using HiggsCluster.Training;
using HiggsCluster.Cli.Grammar;
using System.Diagnostics;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Text;
using TorchSharp;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs demo [--out DIR] [--entries N] [--steps N] [--no-train]`: the embedded default. Writes a tiny text tokenizer,
/// a tiny random audio tokenizer and a tiny random Higgs checkpoint in the real formats, makes a small speech-like
/// dataset, validates it, runs it through the whole data path (printing what the batches hold), then trains a LoRA
/// adapter on the CPU with validation and checkpoints and prints where the adapter, plots and report are.
/// </summary>
public static class DemoCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var outDir = Path.GetFullPath(args.Get("out") ?? Path.Combine("runs", "demo"));
        int batchSize = args.Int("batch-size", 4);
        int entries = args.Int("entries", 24);
        int steps = args.Int("steps", 100);
        var clock = Stopwatch.StartNew();

        stdout.WriteLine($"demo: writing into {outDir}");
        var ws = DemoWorkspace.Create(outDir, entries);
        var data = ws.Data;
        stdout.WriteLine($"demo: {data.Entries} entries, {data.AudioSeconds:F1} s of audio; text tokenizer {ws.TextTokenizer}; audio tokenizer {ws.AudioTokenizer}; base model {ws.BaseModel}");

        var text = TextTokenizer.Load(ws.TextTokenizer);
        var builderOptions = new SampleBuilderOptions { DataRoot = data.Folder, MaxTokens = 4096, KeepWhisperWaveforms = false };
        var report = DataValidator.Validate(data.Manifest, text, builderOptions);
        stdout.WriteLine("demo: validation");
        stdout.Write(report.Render());
        if (!report.Ok) return 1;

        using (var audioTokenizer = HiggsAudioTokenizer.Load(ws.AudioTokenizer))
        {
            var cache = new CodeCache(Path.Combine(outDir, "code-cache"), audioTokenizer);
            var builder = new SampleBuilder(text, new TokenizerCodeSource(audioTokenizer, cache), builderOptions);
            var special = HiggsSpecialTokens.From(text);
            int bins = audioTokenizer.Sizes.Bins;
            // the released 3B model's settings: no Whisper tower, audio-in as codes, delay pattern on
            var settings = new CollatorModelSettings(EncodeWhisperEmbed: false, EncodeAudioInTokens: true, UseDelayPattern: true,
                AudioNumCodebooks: audioTokenizer.Sizes.NQ, AudioStreamBosId: bins, AudioStreamEosId: bins + 1,
                AudioInTokenId: special.Audio, AudioOutTokenId: special.AudioOut, PadTokenId: special.EndOfText);
            var options = CollatorPresets.Create(args.Get("preset") ?? CollatorPresets.Model, settings, w => stderr.WriteLine("warning: " + w));
            using var collator = new HiggsAudioCollator(options);

            stdout.WriteLine($"demo: collating batches of {batchSize} (preset {args.Get("preset") ?? CollatorPresets.Model})");
            stdout.WriteLine("  batch  samples  length  text-labels  audio-out frames  audio-label frames  audio-in frames");
            var pending = new List<ChatMLDatasetSample>();
            int batches = 0;
            long totalLabels = 0, totalAudioLabels = 0;
            void Flush()
            {
                if (pending.Count == 0) return;
                using var scope = torch.NewDisposeScope();
                using var b = collator.Collate(pending);
                long labels = b.LabelIds is null ? 0 : b.LabelIds.Ne(-100).sum().item<long>();
                long audioLabels = b.LabelAudioIds is null ? 0 : b.LabelAudioIds[0].Ne(-100).sum().item<long>();
                totalLabels += labels; totalAudioLabels += audioLabels;
                stdout.WriteLine($"  {batches,5}  {b.Length,7}  {b.InputIds.shape[1],6}  {labels,11}  {Frames(b.AudioOutIds),16}  {audioLabels,18}  {Frames(b.AudioInIds),15}");
                batches++;
                pending.Clear();
            }
            foreach (var item in ManifestReader.Read(data.Manifest))
            {
                if (item.Error is { } e) { stderr.WriteLine($"skipped: {e}"); continue; }
                try { pending.Add(builder.Build(item.Index, item.Sample!).Sample); }
                catch (SampleException ex) { stderr.WriteLine($"skipped: {ex.Message}"); continue; }
                if (pending.Count == batchSize) Flush();
            }
            Flush();
            stdout.WriteLine($"demo: {batches} batches, {totalLabels} text label tokens, {totalAudioLabels} audio label frames per codebook; " +
                             $"code cache {cache.Hits} hits / {cache.Misses} misses; {clock.Elapsed.TotalSeconds:F1} s");
        }
        if (args.Flag("no-train")) return 0;

        var train = ws.TrainOptions(Path.Combine(outDir, "run"), steps);
        train.Progress = args.Get("progress") ?? "auto";
        // what a new user should hear: the first validation entries spoken at every validation (greedy decoding is
        // not used: samples use the run's seed)
        train.Samples = args.Int("samples", 2);
        train.SampleMaxSeconds = 8;
        stdout.WriteLine($"demo: training a LoRA adapter for {steps} steps on the CPU");
        int workers = args.Int("workers", 1);
        train.Ranks = workers; // one plan rank per worker: with --workers N the global batch grows N-fold
        int rc = TrainCommand.Execute(train, resume: null, dryRunOnly: false, stdout, stderr, clusterWorkers: args.Flag("engine") ? null : workers);
        var samples = Path.Combine(train.OutputDir, "samples");
        if (rc == 0 && Directory.Exists(samples))
            stdout.WriteLine($"demo: audio samples (24 kHz WAV + spectrogram PNG per validation): {Path.GetFullPath(samples)}/step-*/ (listed in report.md)");
        stdout.WriteLine($"demo: done in {clock.Elapsed.TotalSeconds:F1} s");
        return rc;
    }

    private static long Frames(TorchSharp.torch.Tensor? codes) => codes is null || codes.dim() < 2 ? 0 : codes.shape[1];
}
