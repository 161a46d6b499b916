using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// The 2026 transformers (≥ 5.3) layout of bosonai/higgs-audio-v2-tokenizer: a HiggsAudioV2TokenizerConfig config.json
/// and renamed keys with the DAC weight norms already folded. It is mapped back to the original names here; encoding
/// still follows the original algorithm (320-sample re-padding), not the transformers port.
/// </summary>
public static partial class TransformersLayout
{
    public static bool IsTransformersConfig(JsonObject c) => c["acoustic_model_config"] is JsonObject;

    public static (TokenizerConfig Config, HubertSizes Hubert) ParseConfig(JsonObject c, string source)
    {
        var ac = c["acoustic_model_config"] as JsonObject ?? throw new InvalidDataException($"{source}: missing 'acoustic_model_config'");
        int[] Ints(JsonObject o, string k) => (o[k] as JsonArray ?? throw new InvalidDataException($"{source}: missing '{k}'"))
            .Select(x => x!.GetValue<int>()).ToArray();
        var down = Ints(ac, "downsampling_ratios");
        if (ac["upsampling_ratios"] is JsonArray && !Ints(ac, "upsampling_ratios").SequenceEqual(down))
            throw new InvalidDataException($"{source}: upsampling_ratios differ from downsampling_ratios; the Higgs tokenizer uses one list for both");
        int sr = c["sample_rate"]?.GetValue<int>() ?? 24000;
        if ((c["semantic_sample_rate"]?.GetValue<int>() ?? 16000) != 16000)
            throw new InvalidDataException($"{source}: semantic_sample_rate must be 16000");
        if ((c["downsample_factor"]?.GetValue<int>() ?? TokenizerSizes.SemanticHop) != TokenizerSizes.SemanticHop)
            throw new InvalidDataException($"{source}: downsample_factor must be {TokenizerSizes.SemanticHop}");
        int bins = c["codebook_size"]?.GetValue<int>() ?? 1024;
        int cbd = c["codebook_dim"]?.GetValue<int>() ?? 64;
        int d = ac["hidden_size"]?.GetValue<int>() ?? throw new InvalidDataException($"{source}: missing acoustic_model_config.hidden_size");
        int hop = down.Aggregate(1, (a, b) => a * b);
        int nq;
        if (c["num_quantizers"] is JsonValue nqv) nq = nqv.GetValue<int>();
        else
        {
            // HiggsAudioV2TokenizerConfig.num_quantizers: 1000 · last bandwidth // (frame rate · bits per code)
            var bws = c["target_bandwidths"] as JsonArray ?? throw new InvalidDataException($"{source}: missing 'target_bandwidths'");
            double last = bws[^1]!.GetValue<double>();
            int frameRate = (int)Math.Ceiling(sr / (double)hop);
            int nbits = (int)Math.Ceiling(Math.Log2(bins));
            nq = (int)Math.Floor(1000 * last / (frameRate * nbits));
        }
        var hubert = c["semantic_model_config"] is JsonObject sm ? HubertSizes.FromJson(sm, source + ":semantic_model_config") : HubertSizes.Base;
        return (new TokenizerConfig(d, cbd, bins, nq, down, sr, TokenizerSizes.KnownTeacher), hubert);
    }

    [GeneratedRegex(@"^acoustic_encoder\.block\.(\d+)\.res_unit([123])\.(snake1|conv1|snake2|conv2)\.(.+)$")]
    private static partial Regex EncResUnit();
    [GeneratedRegex(@"^acoustic_encoder\.block\.(\d+)\.(snake1|conv1)\.(.+)$")]
    private static partial Regex EncBlock();
    [GeneratedRegex(@"^acoustic_encoder\.(conv1|snake1|conv2)\.(.+)$")]
    private static partial Regex EncOuter();
    [GeneratedRegex(@"^acoustic_decoder\.block\.(\d+)\.res_unit([123])\.(snake1|conv1|snake2|conv2)\.(.+)$")]
    private static partial Regex DecResUnit();
    [GeneratedRegex(@"^acoustic_decoder\.block\.(\d+)\.(snake1|conv_t1)\.(.+)$")]
    private static partial Regex DecBlock();
    [GeneratedRegex(@"^acoustic_decoder\.(conv1|snake1|conv2)\.(.+)$")]
    private static partial Regex DecOuter();
    [GeneratedRegex(@"^quantizer\.quantizers\.(\d+)\.codebook\.(.+)$")]
    private static partial Regex Codebook();
    [GeneratedRegex(@"^quantizer\.quantizers\.(\d+)\.(project_in|project_out)\.(.+)$")]
    private static partial Regex Projection();
    [GeneratedRegex(@"^(encoder_semantic|decoder_semantic)\.(.+)$")]
    private static partial Regex Semantic();
    [GeneratedRegex(@"^(conv_blocks\.\d+\.)?conv\.(weight|bias)$")]
    private static partial Regex SemanticConv();
    [GeneratedRegex(@"^(conv_blocks\.\d+\.res_units\.\d+\.)conv1\.weight$")]
    private static partial Regex SemanticUnitConv1();
    [GeneratedRegex(@"^(conv1|conv2)\.weight$")]
    private static partial Regex SemanticOuterConv();

    private static readonly string[] Inner = ["snake1", "conv1", "snake2", "conv2"];

    /// <summary>The original name of a transformers-layout key (folded convs keep a plain <c>.weight</c>).</summary>
    public static string ToOriginalName(string key, int nRatios)
    {
        Match m;
        if ((m = EncResUnit().Match(key)).Success)
            return $"encoder.block.{int.Parse(m.Groups[1].Value) + 1}.block.{int.Parse(m.Groups[2].Value) - 1}.block.{Array.IndexOf(Inner, m.Groups[3].Value)}.{m.Groups[4].Value}";
        if ((m = EncBlock().Match(key)).Success)
            return $"encoder.block.{int.Parse(m.Groups[1].Value) + 1}.block.{(m.Groups[2].Value == "snake1" ? 3 : 4)}.{m.Groups[3].Value}";
        if ((m = EncOuter().Match(key)).Success)
            return $"encoder.block.{m.Groups[1].Value switch { "conv1" => 0, "snake1" => nRatios + 1, _ => nRatios + 2 }}.{m.Groups[2].Value}";
        if ((m = DecResUnit().Match(key)).Success)
            return $"decoder_2.model.{int.Parse(m.Groups[1].Value) + 1}.block.{int.Parse(m.Groups[2].Value) + 1}.block.{Array.IndexOf(Inner, m.Groups[3].Value)}.{m.Groups[4].Value}";
        if ((m = DecBlock().Match(key)).Success)
            return $"decoder_2.model.{int.Parse(m.Groups[1].Value) + 1}.block.{(m.Groups[2].Value == "snake1" ? 0 : 1)}.{m.Groups[3].Value}";
        if ((m = DecOuter().Match(key)).Success)
            return $"decoder_2.model.{m.Groups[1].Value switch { "conv1" => 0, "snake1" => nRatios + 1, _ => nRatios + 2 }}.{m.Groups[2].Value}";
        if ((m = Codebook().Match(key)).Success) return $"quantizer.vq.layers.{m.Groups[1].Value}._codebook.{m.Groups[2].Value}";
        if ((m = Projection().Match(key)).Success) return $"quantizer.vq.layers.{m.Groups[1].Value}.{m.Groups[2].Value}.{m.Groups[3].Value}";
        if (key.StartsWith("fc.", StringComparison.Ordinal)) return "fc_prior." + key[3..];
        if (key.StartsWith("fc1.", StringComparison.Ordinal)) return "fc_post1." + key[4..];
        if (key.StartsWith("fc2.", StringComparison.Ordinal)) return "fc_post2." + key[4..];
        if ((m = Semantic().Match(key)).Success)
        {
            var prefix = m.Groups[1].Value; var rest = m.Groups[2].Value;
            Match r;
            if ((r = SemanticConv().Match(rest)).Success) return $"{prefix}.{r.Groups[1].Value}conv.conv.{r.Groups[2].Value}";
            if ((r = SemanticUnitConv1().Match(rest)).Success) return $"{prefix}.{r.Groups[1].Value}conv1.conv.weight";
            if (prefix == "decoder_semantic" && (r = SemanticOuterConv().Match(rest)).Success) return $"{prefix}.{r.Groups[1].Value}.conv.weight";
            return key;
        }
        return key; // semantic_model.* keeps its names; anything else is reported as unexpected by the strict check
    }

    public static Dictionary<string, Tensor> ToOriginal(IReadOnlyDictionary<string, Tensor> raw, int nRatios, string source)
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in raw)
        {
            var n = ToOriginalName(k, nRatios);
            if (!d.TryAdd(n, v)) throw new InvalidDataException($"{source}: two keys map to '{n}' (second: '{k}')");
        }
        return d;
    }
}
