using HiggsCluster.Cli.Grammar;
using System.Diagnostics;
using System.Globalization;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Generation;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs generate --base DIR [--adapter DIR] --audio-tokenizer DIR [--tokenizer tokenizer.json] --text "…" [--scene "…"]
/// [--reference-audio ref.wav --reference-text "…"] --out out.wav [--codes-out codes.safetensors] [--greedy | --temperature T
/// --top-k K --top-p P] [--ras-window N --ras-max-repeat M] [--seed S] [--max-seconds S] [--device D] [--dtype auto|bf16|fp32]`:
/// text to speech with the base model and, optionally, a trained adapter.
/// </summary>
public static class GenerateCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string Required(string key, string what) => args.Required("generate", key, what);
        var baseDir = Required("base", "DIR");
        var tokDir = Required("audio-tokenizer", "DIR");
        var outWav = Required("out", "FILE.wav");
        var text = args.Get("text") ?? throw new CliUsageException("generate: --text \"…\" is required");
        var textTokenizer = args.Get("tokenizer") ?? Path.Combine(baseDir, "tokenizer.json");
        var request = new GenerationRequest(text, args.Get("scene"), args.Get("reference-audio"), args.Get("reference-text"));
        var options = Sampling(args);
        try { request.Validate(); }
        catch (GenerationException e) { throw new CliUsageException("generate: " + e.Message); }
        if (!File.Exists(Path.Combine(baseDir, "config.json"))) throw new CliUsageException($"generate: --base: no config.json in {baseDir}");
        if (!File.Exists(textTokenizer)) throw new CliUsageException($"generate: --tokenizer: file not found: {textTokenizer}");
        if (!Directory.Exists(tokDir)) throw new CliUsageException($"generate: --audio-tokenizer: folder not found: {tokDir}");

        var clock = Stopwatch.StartNew();
        Device device;
        try { device = TorchDevices.Resolve(args.Get("device") ?? "cpu", "--device"); }
        catch (TrainConfigException e) { throw new CliUsageException("generate: " + e.Message); }
        var dtype = args.Get("dtype") ?? "auto";
        if (!PrecisionPolicy.Names.Contains(dtype)) throw new CliUsageException($"generate: --dtype '{dtype}' is not one of {string.Join(", ", PrecisionPolicy.Names)}");
        var policy = PrecisionPolicy.For(dtype, device);

        var model = ModelWeights.LoadModel(baseDir, policy, device);
        if (args.Get("adapter") is { } adapterDir)
        {
            try { LoraAdapter.Load(model, adapterDir, policy.LoraDType); }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or KeyNotFoundException)
            {
                throw new CliUsageException($"generate: --adapter {adapterDir} does not fit the base {baseDir}: {e.Message}");
            }
        }
        var tokens = TextTokenizer.Load(textTokenizer);
        using var audio = HiggsAudioTokenizer.Load(tokDir);
        var context = Context(model, tokens, audio);
        GenerationResult r;
        try { r = context.Generate(request, options with { MaxNewTokens = MaxTokens(args, audio) }); }
        catch (GenerationException e) { throw new CliUsageException("generate: " + e.Message); }
        var wave = context.Decode(r.Codes);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outWav))!);
        WavWriter.Write(outWav, wave, context.SampleRate);
        if (args.Get("codes-out") is { } codesOut) WriteCodes(codesOut, r.Codes);
        double seconds = wave.Length / (double)context.SampleRate;
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generate: {r.Frames} frames ({seconds:0.00} s of audio) in {clock.Elapsed.TotalSeconds:0.0} s, stopped by {r.StopReason}; wrote {outWav}"));
        if (r.Frames == 0) stderr.WriteLine("warning: the model produced no audio (it answered in text only)");
        return 0;
    }

    public static SpeechContext Context(HiggsAudioModel model, TextTokenizer tokens, HiggsAudioTokenizer audio) => SpeechContext.For(model, tokens, audio);

    private static SamplingOptions Sampling(CliArgs args)
    {
        double Dbl(string k, double d) => args.Get(k) is { } v ? (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) ? x
            : throw new CliUsageException($"generate: --{k} must be a number, got '{v}'")) : d;
        var defaults = new SamplingOptions();
        var o = defaults with
        {
            Greedy = args.Flag("greedy"),
            Temperature = Dbl("temperature", defaults.Temperature),
            TopK = args.Int("top-k", defaults.TopK),
            TopP = Dbl("top-p", defaults.TopP),
            RasWindow = args.Int("ras-window", defaults.RasWindow),
            RasMaxRepeat = args.Int("ras-max-repeat", defaults.RasMaxRepeat),
            Seed = (ulong)args.Int("seed", 0),
        };
        if (o.Greedy && (args.Get("temperature") ?? args.Get("top-k") ?? args.Get("top-p")) is not null)
            throw new CliUsageException("generate: --greedy does not combine with --temperature, --top-k or --top-p");
        if (o.Temperature < 0) throw new CliUsageException("generate: --temperature must not be negative");
        if (o.TopP is <= 0 or > 1) throw new CliUsageException("generate: --top-p must be in (0, 1]");
        if (o.TopK < 0) throw new CliUsageException("generate: --top-k must not be negative");
        return o;
    }

    /// <summary>Tokens for --max-seconds of audio (frames at the tokenizer's rate, the delay columns) plus room for text.</summary>
    private static int MaxTokens(CliArgs args, HiggsAudioTokenizer audio)
    {
        var s = args.Get("max-seconds") ?? "30";
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || seconds <= 0 || seconds > 3600)
            throw new CliUsageException($"generate: --max-seconds must be a number in (0, 3600], got '{s}'");
        double fps = audio.SampleRate / (double)audio.HopLength;
        return (int)Math.Ceiling(seconds * fps) + 64;
    }

    public static void WriteCodes(string path, long[,] codes)
    {
        int k = codes.GetLength(0), t = codes.GetLength(1);
        var flat = new long[k * t];
        for (int q = 0; q < k; q++) for (int j = 0; j < t; j++) flat[q * t + j] = codes[q, j];
        using var c = tensor(flat, new long[] { k, t });
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafetensorsWriter.Write(path, new[] { new KeyValuePair<string, Tensor>("codes", c) }, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
