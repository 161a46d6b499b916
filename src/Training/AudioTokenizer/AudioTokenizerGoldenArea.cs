using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using HiggsCluster.Training.Goldens;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// Golden area <c>audio_tokenizer</c>: run kinds <c>encode</c>, <c>encode_batch</c>, <c>decode</c> and <c>frame_count</c>.
/// Codes are compared under the near-tie rule (a differing code is accepted from the first codebook whose reference
/// margin is below the threshold onwards); every other expected tensor is compared by the harness.
/// </summary>
public sealed class AudioTokenizerGoldenArea : IGoldenArea
{
    /// <summary>Reference margins below this are near-ties a float32 port may resolve either way.</summary>
    public const double DefaultNearTieMargin = 1e-4;

    private static readonly ConcurrentDictionary<string, Lazy<HiggsAudioTokenizer>> Models = new(StringComparer.Ordinal);

    public string Name => "audio_tokenizer";

    public GoldenOutputs Compute(GoldenRun run)
    {
        var kind = run.Run["kind"]?.GetValue<string>() ?? throw new InvalidDataException($"{run.Label}: run has no 'kind'");
        return kind switch
        {
            "encode" => Encode(run, batch: false),
            "encode_batch" => Encode(run, batch: true),
            "decode" => Decode(run),
            "frame_count" => FrameCount(run),
            _ => throw new NotSupportedException($"{run.Label}: unknown audio_tokenizer run kind '{kind}'"),
        };
    }

    /// <summary>
    /// The case's tokenizer, loaded once per case folder from every weights file it lists; all of them must fold to
    /// the same weights, which is checked here once.
    /// </summary>
    private static HiggsAudioTokenizer ModelFor(GoldenRun run)
    {
        var p = run.CaseParameters;
        var cfg = run.File(p["config"]?.GetValue<string>() ?? TokenizerWeights.ConfigFile);
        var hub = run.File(p["hubert_config"]?.GetValue<string>() ?? TokenizerWeights.HubertConfigFile);
        var files = p["weights"] switch
        {
            JsonArray a => a.Select(x => x!.GetValue<string>()).ToList(),
            JsonValue v => [v.GetValue<string>()],
            _ => [TokenizerWeights.SafetensorsFileName],
        };
        var key = Path.GetFullPath(run.CaseDir) + "|" + string.Join("|", files);
        var lazy = Models.GetOrAdd(key, _ => new Lazy<HiggsAudioTokenizer>(() =>
        {
            using var scope = torch.NewDisposeScope();
            TokenizerWeights? first = null;
            foreach (var f in files)
            {
                var ck = TokenizerWeights.LoadFiles(cfg, hub, run.File(f));
                if (first == null) { first = ck; continue; }
                var same = ck.Identity == first.Identity;
                ck.Dispose();
                if (!same) throw new InvalidDataException($"{run.CaseDir}: {f} does not hold the same weights as {files[0]}");
            }
            return new HiggsAudioTokenizer(first ?? throw new InvalidDataException($"{run.CaseDir}: no weights listed"));
        }));
        try { return lazy.Value; }
        catch { Models.TryRemove(key, out _); throw; }
    }

    private static Tensor Input(GoldenRun run, string parameter)
    {
        var name = run.RunParameters[parameter]?.GetValue<string>() ?? throw new InvalidDataException($"{run.Label}: missing parameter '{parameter}'");
        var inputs = run.LoadInputs();
        return inputs.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"{run.Label}: input tensor '{name}' not in {run.InputsPath}");
    }

    private static GoldenOutputs Encode(GoldenRun run, bool batch)
    {
        var model = ModelFor(run);
        var sr = run.RunParameters["sample_rate"]?.GetValue<int>() ?? model.SampleRate;
        if (sr != model.SampleRate) throw new NotSupportedException($"{run.Label}: sample_rate {sr} differs from the tokenizer's {model.SampleRate}");
        var wave = Input(run, "input");
        if (batch ? wave.dim() != 2 : wave.dim() != 1)
            throw new InvalidDataException($"{run.Label}: input has shape [{string.Join(",", wave.shape)}]");
        var r = model.EncodeBatch(batch ? wave : wave.unsqueeze(0), intermediates: true);
        var o = new GoldenOutputs();
        Tensor One(Tensor t) => batch ? t : t[0];
        o.Tensors["codes"] = One(r.Codes);
        o.Tensors["prequant_latent"] = One(r.PrequantLatent);
        o.Tensors["code_margin"] = One(r.CodeMargin);
        o.Tensors["acoustic_latent"] = One(r.AcousticLatent!);
        o.Tensors["semantic_latent"] = One(r.SemanticLatent!);
        if (!batch)
        {
            o.Tensors["semantic_features"] = r.SemanticFeatures![0];
            o.Tensors["hubert_hidden_states"] = r.HubertHiddenStates![.., 0];
            o.Tensors["resampled_16k"] = r.Resampled16k![0];
        }
        foreach (var name in ReferenceOnly(run)) o.CheckedByArea.Add(name);
        var expected = run.LoadExpected();
        if (expected.TryGetValue("codes", out var expCodes))
        {
            o.CheckedByArea.Add("codes");
            expected.TryGetValue("code_margin", out var margin);
            CheckCodes(o, o.Tensors["codes"], expCodes, margin, NearTieMargin(run));
        }
        return o;
    }

    private static IEnumerable<string> ReferenceOnly(GoldenRun run) =>
        (run.Case["compare"]?["reference_only"] as JsonArray)?.Select(x => x!.GetValue<string>()) ?? ["code_margin"];

    private static double NearTieMargin(GoldenRun run) =>
        run.CaseParameters["near_tie_margin"]?.GetValue<double>() ?? DefaultNearTieMargin;

    /// <summary>
    /// Codes (..., n_q, T) must equal the reference except in frames where, at or before the first differing codebook,
    /// the reference margin is below <paramref name="threshold"/>.
    /// </summary>
    public static void CheckCodes(GoldenOutputs o, Tensor actual, Tensor expected, Tensor? margin, double threshold)
    {
        if (!actual.shape.SequenceEqual(expected.shape))
        {
            o.Failures.Add($"codes: shape [{string.Join(",", actual.shape)}] != expected [{string.Join(",", expected.shape)}]");
            o.AreaWorstError = double.PositiveInfinity;
            return;
        }
        long nq = expected.shape[^2], t = expected.shape[^1];
        var a = actual.to_type(ScalarType.Int64).reshape(-1, nq, t).data<long>().ToArray();
        var e = expected.to_type(ScalarType.Int64).reshape(-1, nq, t).data<long>().ToArray();
        var m = margin?.to_type(ScalarType.Float64).reshape(-1, nq, t).data<double>().ToArray();
        long rows = a.Length / (nq * t);
        int hard = 0, tied = 0; string? firstHard = null;
        for (long b = 0; b < rows; b++)
        for (long f = 0; f < t; f++)
        {
            long firstDiff = -1;
            for (long q = 0; q < nq && firstDiff < 0; q++)
                if (a[(b * nq + q) * t + f] != e[(b * nq + q) * t + f]) firstDiff = q;
            if (firstDiff < 0) continue;
            bool excused = false;
            if (m != null)
                for (long q = 0; q <= firstDiff && !excused; q++) excused = m[(b * nq + q) * t + f] < threshold;
            if (excused) tied++;
            else { hard++; firstHard ??= $"row {b} frame {f} codebook {firstDiff}: {a[(b * nq + firstDiff) * t + f]} vs {e[(b * nq + firstDiff) * t + f]}"; }
        }
        if (hard > 0)
        {
            o.Failures.Add($"codes: {hard} frame(s) differ without a reference near-tie (first: {firstHard}); {tied} near-tie frame(s) excused");
            o.AreaWorstError = Math.Max(o.AreaWorstError, hard);
        }
    }

    private static GoldenOutputs Decode(GoldenRun run)
    {
        var model = ModelFor(run);
        var codes = Input(run, "codes");
        if (codes.dim() != 2) throw new InvalidDataException($"{run.Label}: codes have shape [{string.Join(",", codes.shape)}]");
        var (wave, deq, dec) = model.DecodeDetailed(codes.unsqueeze(0));
        var o = new GoldenOutputs();
        o.Tensors["waveform"] = wave[0];
        o.Tensors["dequantized"] = deq[0];
        o.Tensors["acoustic_decoder_input"] = dec[0];
        return o;
    }

    private static GoldenOutputs FrameCount(GoldenRun run)
    {
        var n = Input(run, "input").to_type(ScalarType.Int64).data<long>().ToArray();
        var p = run.CaseParameters;
        var sizes = TokenizerSizes.Real;
        if (p["sample_rate"] is JsonValue sr && sr.GetValue<int>() != sizes.SampleRate)
            throw new NotSupportedException($"{run.Label}: frame counts are defined for {sizes.SampleRate} Hz input");
        if (p["ratios"] is JsonArray ratios) sizes = sizes with { Ratios = ratios.Select(x => x!.GetValue<int>()).ToArray() };
        var plans = n.Select(x => FramePlan.For(sizes, x)).ToArray();
        var o = new GoldenOutputs();
        o.Tensors["frames"] = tensor(plans.Select(x => x.Frames).ToArray());
        o.Tensors["acoustic_frames_first_pass"] = tensor(plans.Select(x => x.AcousticFramesFirstPass).ToArray());
        o.Tensors["semantic_frames"] = tensor(plans.Select(x => x.SemanticFrames).ToArray());
        o.Tensors["repadded"] = tensor(plans.Select(x => (byte)(x.Repadded ? 1 : 0)).ToArray());
        o.Tensors["raises"] = tensor(plans.Select(x => (byte)(x.Raises ? 1 : 0)).ToArray());
        return o;
    }
}
