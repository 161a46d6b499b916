using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HiggsCluster.Training;
using HiggsCluster.Training.Collation;
using HiggsCluster.Planning;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench peer`: one training step (forward + backward + clip + AdamW on the LoRA parameters) of our engine and
/// of bench/peer/higgs_peer.py, a PyTorch implementation of the same architecture, on the same weights and the same
/// collated batch (both read from safetensors files written here), fp32, same thread count. Prints the loss of every
/// step on both sides, the first-step |diff|, and the step-time ratio ours/PyTorch.
/// </summary>
internal static class PeerBench
{
    private const long AudioIn = 8000, AudioOut = 8001, Pad = 8005;
    // plain text ids standing for <|audio_bos|>, <|audio_eos|>, <|audio_out_bos|> (only the placeholders are special)
    private const long AudioBos = 10, AudioEos = 11, OutBos = 12;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static HiggsAudioConfig SmallConfig(int hidden, int layers) => new()
    {
        Text = new LlamaTextConfig
        {
            VocabSize = 8192, HiddenSize = hidden, IntermediateSize = hidden * 11 / 4, NumHiddenLayers = layers,
            NumAttentionHeads = hidden / 64, NumKeyValueHeads = Math.Max(1, hidden / 256), HeadDim = 64, RmsNormEps = 1e-5, RopeTheta = 500000,
        },
        AdapterType = AudioAdapterType.DualFfn,
        DualFfnLayers = Enumerable.Range(0, layers).ToArray(),
        SkipAudioTower = true, EncodeWhisperEmbed = false, EncodeAudioInTokens = true, UseDelayPattern = true,
        AudioNumCodebooks = 8, AudioCodebookSize = 1024, AudioStreamBosId = 1024, AudioStreamEosId = 1025,
        AudioInTokenIdx = AudioIn, AudioOutTokenIdx = AudioOut, PadTokenId = Pad,
    };

    public static int Run(BenchArgs a)
    {
        int hidden = a.Int("hidden", 512), layers = a.Int("layers", 4), batch = a.Int("batch", 2), steps = a.Int("steps", 6), rounds = a.Int("rounds", 3);
        int threads = a.Int("threads", Environment.ProcessorCount);
        string python = a.Str("python", "/usr/bin/python3");
        var dir = a.Str("dir", Path.Combine(Path.GetTempPath(), "higgs-peer-bench-" + Guid.NewGuid().ToString("N")));
        bool keep = a.Int("keep", 0) != 0;
        set_num_threads(threads);
        Directory.CreateDirectory(dir);
        try
        {
            var cfg = SmallConfig(hidden, layers);
            var o = new TrainOptions { LoraDropout = 0.0, Schedule = ScheduleKind.Constant, WarmupSteps = 0 };
            using var model = new HiggsAudioModel(cfg, PrecisionPolicy.For(CPU).BaseDType, CPU);
            ModelWeights.RandomInit(model, seed: 7);
            ModelWeights.Save(model, Path.Combine(dir, "model"));
            var adapter = LoraAdapter.Attach(model, o.ToLoraConfig(), init: new Generator(11));
            // B starts at 0 in PEFT; a non-zero B makes the first step's loss depend on the LoRA branches too.
            using (no_grad())
            {
                var g = new Generator(12);
                foreach (var (key, p) in adapter.NamedParameters())
                    if (key.EndsWith(".lora_B.weight", StringComparison.Ordinal)) p.copy_(randn(p.shape, generator: g) * 0.02);
            }
            adapter.Save(Path.Combine(dir, "adapter"));

            using var b = MakeBatch(cfg, batch, new Random(3));
            SafetensorsWriter.Write(Path.Combine(dir, "batch.safetensors"), b.ToNamedTensors().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.contiguous())).ToList());
            var train = new JsonObject
            {
                ["lr"] = o.Lr, ["beta1"] = o.Beta1, ["beta2"] = o.Beta2, ["eps"] = o.Eps, ["weight_decay"] = o.WeightDecay,
                ["max_grad_norm"] = o.MaxGradNorm, ["lora_r"] = o.LoraR, ["lora_alpha"] = o.LoraAlpha,
                ["lora_targets"] = new JsonArray(o.LoraTargets.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
                ["text_loss_weight"] = o.TextLossWeight, ["audio_loss_weight"] = o.AudioLossWeight, ["codebook_reduction"] = "mean",
            };
            File.WriteAllText(Path.Combine(dir, "train.json"), train.ToJsonString());

            // Rounds alternate the two sides so a burst of load from other processes hits both alike.
            var engine = TrainingEngine.Create(model, adapter, o, (steps + 1) * rounds);
            var script = Path.Combine(RepoPaths.Root, "bench", "peer", "higgs_peer.py");
            var oursLoss = new List<double>(); var oursT = new List<double>(); var peerT = new List<double>();
            double[] peerLoss = Array.Empty<double>();
            long positions = 0; int step = 0; string torchVersion = "?";
            for (int round = 0; round < rounds; round++)
            {
                for (int s = 0; s <= steps; s++, step++)
                {
                    var sw = Stopwatch.StartNew();
                    using var scope = NewDisposeScope();
                    var g = engine.ComputeGradients(new[] { b });
                    engine.ApplyGradients(g, step);
                    double sec = sw.Elapsed.TotalSeconds;
                    if (round == 0) oursLoss.Add(g.Loss);
                    if (s > 0) oursT.Add(sec);  // like the peer's: the first step after the other side ran is a warm-up
                    positions = g.Positions;
                }
                var (rc, output) = RunPython(python, script, dir, steps, threads);
                var line = output.Split('\n').LastOrDefault(l => l.StartsWith("{", StringComparison.Ordinal));
                if (rc != 0 || line is null)
                {
                    Console.WriteLine($"peer: PyTorch peer failed (exit {rc}):\n{output}");
                    return 1;
                }
                var res = JsonNode.Parse(line)!.AsObject();
                if (round == 0)
                {
                    peerLoss = res["losses"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
                    torchVersion = res["torch"]!.GetValue<string>();
                    Console.WriteLine($"peer: PyTorch {torchVersion}, {res["threads"]!.GetValue<int>()} threads, {res["positions"]!.GetValue<long>()} merged positions");
                }
                peerT.AddRange(res["seconds"]!.AsArray().Skip(1).Select(x => x!.GetValue<double>()));
            }
            Console.WriteLine($"peer: hidden {hidden}, {layers} dual-FFN layers, vocab {cfg.Text.VocabSize}, 8x1026 codebooks, batch {batch} ({positions} merged positions), "
                + $"LoRA r{o.LoraR}/a{o.LoraAlpha} on {adapter.ModulePaths.Count} linears, fp32, {threads} threads, {rounds} rounds of {steps} timed steps per side");
            for (int s = 0; s < oursLoss.Count && s < peerLoss.Length; s++)
                Console.WriteLine(string.Format(Inv, "peer: step {0} loss ours {1:R}  pytorch {2:R}  |diff| {3:E2}  rel {4:E2}",
                    s + 1, oursLoss[s], peerLoss[s], Math.Abs(oursLoss[s] - peerLoss[s]), Math.Abs(oursLoss[s] - peerLoss[s]) / Math.Abs(peerLoss[s])));
            double maxRel = oursLoss.Zip(peerLoss, (x, y) => Math.Abs(x - y) / Math.Abs(y)).Max();
            Console.WriteLine(string.Format(Inv, "RESULT peer_loss_first_step ours={0:R} pytorch={1:R} absdiff={2:E2} reldiff={3:E2} max_rel_all_steps={4:E2} agree={5}",
                oursLoss[0], peerLoss[0], Math.Abs(oursLoss[0] - peerLoss[0]), Math.Abs(oursLoss[0] - peerLoss[0]) / Math.Abs(peerLoss[0]), maxRel, maxRel <= 1e-4 ? "yes" : "NO"));
            Console.WriteLine("peer: step seconds ours    " + string.Join(" ", oursT.Select(x => x.ToString("F3", Inv))));
            Console.WriteLine("peer: step seconds pytorch " + string.Join(" ", peerT.Select(x => x.ToString("F3", Inv))));
            Console.WriteLine(Stats.Line("peer_step_ours_s", oursT, "s"));
            Console.WriteLine(Stats.Line("peer_step_pytorch_s", peerT, "s"));
            Console.WriteLine(string.Format(Inv, "RESULT peer_step_ratio ours/pytorch={0:F3} (median {1:F3} s / {2:F3} s; min {3:F3} s / {4:F3} s = {5:F3}; target <= 1.05)",
                Stats.Median(oursT) / Stats.Median(peerT), Stats.Median(oursT), Stats.Median(peerT), oursT.Min(), peerT.Min(), oursT.Min() / peerT.Min()));
            Console.WriteLine(string.Format(Inv, "RESULT peer_tokens_per_s ours={0:F0} pytorch={1:F0} (merged positions per second, median step)",
                positions / Stats.Median(oursT), positions / Stats.Median(peerT)));
            double flops = GpuBench.FlopsPerToken(cfg, positions / (double)batch) * positions;
            Console.WriteLine(string.Format(Inv, "peer: model FLOPs per step ~{0:F1} GFLOP (4·N_active·T + attention): ours {1:F1} GFLOP/s, pytorch {2:F1} GFLOP/s at the median step",
                flops / 1e9, flops / Stats.Median(oursT) / 1e9, flops / Stats.Median(peerT) / 1e9));
            Profile(engine, model, b, a.Int("profile-steps", 10), step);
            return 0;
        }
        finally
        {
            if (!keep) try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Where our step's time goes: the engine's step cut into forward (with the host-side sequence merge timed on its
    /// own), loss, backward and clip+AdamW, each the median over <paramref name="steps"/> steps.
    /// </summary>
    private static void Profile(TrainingEngine engine, HiggsAudioModel model, HiggsBatch b, int steps, int firstStep)
    {
        var parts = new Dictionary<string, List<double>>(StringComparer.Ordinal)
        {
            ["merge (host)"] = new(), ["forward"] = new(), ["loss"] = new(), ["backward"] = new(), ["clip+adamw"] = new(), ["step"] = new(),
        };
        model.train();
        var labels = TrainingEngine.AudioLabels(b);
        for (int s = -1; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var all = Stopwatch.StartNew();
            var sw = Stopwatch.StartNew();
            engine.Optimizer.ZeroGrad();
            var output = model.Forward(b);
            parts["forward"].Add(sw.Elapsed.TotalSeconds); sw.Restart();
            var loss = HiggsLoss.Compute(output.Logits, output.ExpandedLabels, output.AudioLogits, labels, engine.LossOptions);
            _ = loss.Loss.item<float>();
            parts["loss"].Add(sw.Elapsed.TotalSeconds); sw.Restart();
            loss.Loss.backward();
            parts["backward"].Add(sw.Elapsed.TotalSeconds); sw.Restart();
            GradClip.ClipGradNorm(engine.Optimizer.Parameters.Select(p => p.Param), engine.MaxGradNorm);
            engine.Optimizer.Step(engine.LrAt(firstStep + s + 1));
            parts["clip+adamw"].Add(sw.Elapsed.TotalSeconds);
            parts["step"].Add(all.Elapsed.TotalSeconds);
            sw.Restart();
            using (no_grad())
            {
                var ids = b.InputIds;
                var emb = zeros(ids.shape[0], ids.shape[1], model.Config.Text.HiddenSize);
                var ain = model.EmbedAudioIds(b.AudioInIds!, "audio_in_ids");
                var aout = model.EmbedAudioIds(b.AudioOutIds!, "audio_out_ids");
                sw.Restart();
                SequenceMerge.Merge(emb, ids, b.AttentionMask, b.LabelIds, null, null, ain, b.AudioInIdsStart, aout, b.AudioOutIdsStart,
                    model.Config.AudioInTokenIdx, model.Config.AudioOutTokenIdx, model.Config.PadTokenId, 8, ids.shape[0] == 1);
                parts["merge (host)"].Add(sw.Elapsed.TotalSeconds);
            }
        }
        foreach (var xs in parts.Values) xs.RemoveAt(0);  // step -1 is a warm-up
        double total = Stats.Median(parts["step"]);
        foreach (var (name, xs) in parts)
            Console.WriteLine(string.Format(Inv, "PROFILE ours {0,-13} median {1,8:F1} ms  ({2,5:F1}% of the step)", name, Stats.Median(xs) * 1000, 100 * Stats.Median(xs) / total));
    }

    private static (int Rc, string Output) RunPython(string python, string script, string dir, int steps, int threads)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { script, "--dir", dir, "--steps", steps.ToString(Inv), "--threads", threads.ToString(Inv) })
            psi.ArgumentList.Add(arg);
        // Debian's torch calls the system BLAS (libblas.so.3: OpenBLAS once libopenblas0-pthread is installed); these
        // tuning variables slow a current OpenBLAS, so the peer runs without them and with the same thread count.
        psi.Environment.Remove("OPENBLAS_CORETYPE");
        psi.Environment.Remove("OPENBLAS_L2_SIZE");
        psi.Environment["OPENBLAS_NUM_THREADS"] = threads.ToString(Inv);
        psi.Environment["OMP_NUM_THREADS"] = threads.ToString(Inv);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {python}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// Voice-clone-shaped samples: untrained system/user text, a user audio-in, an untrained reference audio-out,
    /// trained assistant text, then the trained target audio-out.
    /// </summary>
    public static HiggsBatch MakeBatch(HiggsAudioConfig cfg, int batch, Random rng, int? targetFrames = null) =>
        Collate(cfg, Enumerable.Range(0, batch).Select(_ => MakeSample(rng, cfg, targetFrames)).ToList());

    /// <summary>The model preset's collation (delay pattern, audio-in as codes, no Whisper) of the given samples.</summary>
    public static HiggsBatch Collate(HiggsAudioConfig cfg, IReadOnlyList<ChatMLDatasetSample> samples)
    {
        var settings = new CollatorModelSettings(EncodeWhisperEmbed: false, EncodeAudioInTokens: true, UseDelayPattern: true,
            AudioNumCodebooks: cfg.AudioNumCodebooks, AudioStreamBosId: cfg.AudioStreamBosId, AudioStreamEosId: cfg.AudioStreamEosId,
            AudioInTokenId: cfg.AudioInTokenIdx, AudioOutTokenId: cfg.AudioOutTokenIdx, PadTokenId: cfg.PadTokenId);
        using var collator = new HiggsAudioCollator(CollatorPresets.Create(CollatorPresets.Model, settings));
        return collator.Collate(samples.ToList());
    }

    /// <summary>
    /// One voice-clone sample. Every length and text id is drawn before the codes, so with a given
    /// <paramref name="targetFrames"/> the same seed gives the same layout whatever the number of frames.
    /// </summary>
    public static ChatMLDatasetSample MakeSample(Random rng, HiggsAudioConfig cfg, int? targetFrames)
    {
        int k = cfg.AudioNumCodebooks, bins = cfg.AudioCodebookSize;
        long AudioIn = cfg.AudioInTokenIdx, AudioOut = cfg.AudioOutTokenIdx;
        var ids = new List<long>(); var labels = new List<long>();
        void Text(int n, bool trained) { for (int i = 0; i < n; i++) { long v = rng.Next(100, 7900); ids.Add(v); labels.Add(trained ? v : -100); } }
        void Tok(long v, bool trained) { ids.Add(v); labels.Add(trained ? v : -100); }
        var audios = new List<int>();
        Text(rng.Next(40, 70), false);
        Tok(AudioBos, false); Tok(AudioIn, false); Tok(AudioEos, false); audios.Add(rng.Next(40, 60));
        Tok(OutBos, false); Tok(AudioOut, false); Tok(AudioEos, false); audios.Add(rng.Next(50, 80));
        Text(rng.Next(20, 40), true);
        Tok(OutBos, true); Tok(AudioOut, true); Tok(AudioEos, true); audios.Add(targetFrames ?? rng.Next(100, 160));
        int total = audios.Sum();
        var codes = new long[k * total];
        for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(0, bins);
        var starts = new long[audios.Count];
        for (int i = 1; i < audios.Count; i++) starts[i] = starts[i - 1] + audios[i - 1];
        return new ChatMLDatasetSample
        {
            InputIds = tensor(ids.ToArray()),
            LabelIds = tensor(labels.ToArray()),
            AudioIdsConcat = tensor(codes, new long[] { k, total }),
            AudioIdsStart = tensor(starts),
            AudioWaveformsConcat = zeros(0),
            AudioWaveformsStart = zeros(0, dtype: ScalarType.Int64),
            AudioSampleRate = zeros(0),
            AudioSpeakerIndices = full(audios.Count, -1L, dtype: ScalarType.Int64),
        };
    }
}

/// <summary>Median / min / max lines in the `RESULT name median=… min=… max=… n=…` form bench/run collects.</summary>
internal static class Stats
{
    public static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.OrderBy(x => x).ToList();
        return s.Count == 0 ? double.NaN : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    public static string Line(string name, IReadOnlyList<double> xs, string unit) =>
        string.Format(CultureInfo.InvariantCulture, "RESULT {0} median={1:G5} min={2:G5} max={3:G5} n={4} unit={5}",
            name, Median(xs), xs.Min(), xs.Max(), xs.Count, unit);
}
