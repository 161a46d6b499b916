using System.Text.Json.Nodes;
using HiggsCluster.Training.Audio;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

/// <summary>Golden area <c>whisper</c>: one extractor call per run on the slices listed in <c>run.inputs</c>.</summary>
public sealed class WhisperGoldenArea : IGoldenArea
{
    public string Name => "whisper";

    public GoldenOutputs Compute(GoldenRun run)
    {
        var inputs = LoadInputs(run);
        var slices = run.Run["inputs"] as JsonArray
                     ?? throw new InvalidDataException($"{run.Label}: run.inputs must list waveform slices");
        var clips = new List<Tensor>();
        foreach (var s in slices)
        {
            var o = s as JsonObject ?? throw new InvalidDataException($"{run.Label}: run.inputs entry is not an object");
            var name = o["tensor"]?.GetValue<string>() ?? throw new InvalidDataException($"{run.Label}: slice has no 'tensor'");
            if (!inputs.TryGetValue(name, out var t)) throw new InvalidDataException($"{run.Label}: inputs have no tensor '{name}'");
            long start = o["start"]?.GetValue<long>() ?? 0, end = o["end"]?.GetValue<long>() ?? t.shape[0];
            if (start < 0 || end > t.shape[0] || end < start)
                throw new InvalidDataException($"{run.Label}: slice [{start}, {end}) outside '{name}' of length {t.shape[0]}");
            clips.Add(t[(int)start..(int)end]);
        }
        using var fe = new WhisperFeatureExtractor(SettingsFrom(run.CaseParameters));
        var r = fe.Extract(clips);
        var outputs = new GoldenOutputs();
        outputs.Tensors["input_features"] = r.InputFeatures;
        outputs.Tensors["attention_mask"] = r.AttentionMask;
        return outputs;
    }

    private static Dictionary<string, Tensor> LoadInputs(GoldenRun run) =>
        GoldenRun.LoadUnpacked(run.File("inputs.safetensors"));

    /// <summary>Extractor settings from <c>parameters.feature_extractor</c> (large-v3 values where absent).</summary>
    public static WhisperFeatureSettings SettingsFrom(JsonObject caseParameters)
    {
        var s = WhisperFeatureSettings.LargeV3;
        if (caseParameters["feature_extractor"] is not JsonObject fe) return s;
        int Get(string k, int d) => fe[k]?.GetValue<int>() ?? d;
        if ((fe["padding_value"]?.GetValue<double>() ?? 0.0) != 0.0 || (fe["padding_side"]?.GetValue<string>() ?? "right") != "right")
            throw new NotSupportedException("Whisper features: only zero right padding is implemented");
        var r = s with
        {
            FeatureSize = Get("feature_size", s.FeatureSize),
            SamplingRate = Get("sampling_rate", s.SamplingRate),
            HopLength = Get("hop_length", s.HopLength),
            ChunkLength = Get("chunk_length", s.ChunkLength),
            NFft = Get("n_fft", s.NFft),
        };
        if (Get("n_samples", r.NSamples) != r.NSamples || Get("nb_max_frames", r.NbMaxFrames) != r.NbMaxFrames)
            throw new InvalidDataException("Whisper features: n_samples / nb_max_frames disagree with chunk_length, sampling_rate and hop_length");
        return r;
    }
}
