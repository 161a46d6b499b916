namespace HiggsCluster.Training.Model;

/// <summary>
/// Names of weights and modules in the two Hugging Face layouts of Higgs Audio v2. The model always uses the boson
/// names; the transformers ≥ 5.3 <c>HiggsAudioV2</c> layout nests the backbone under <c>model.</c>, calls the codebook
/// embeddings <c>model.embed_audio_tokens.embed_audio_tokens</c> and keeps the two heads at the top level. Both
/// directions are plain string maps, so module paths (LoRA targets) and weight keys translate the same way.
/// </summary>
public static class LayoutKeys
{
    private const string TfAudioEmbed = "model.embed_audio_tokens.embed_audio_tokens";
    private const string BosonAudioEmbed = "audio_codebook_embeddings";
    private const string BosonHeads = "audio_decoder_proj.";
    private static readonly string[] Heads = { "text_lm_head", "audio_lm_head" };

    /// <summary>A file key (or module path) in <paramref name="layout"/> → the model's boson name.</summary>
    public static string ToModel(string name, WeightsLayout layout)
    {
        if (layout == WeightsLayout.Boson) return name;
        if (IsUnder(name, TfAudioEmbed)) return BosonAudioEmbed + name[TfAudioEmbed.Length..];
        foreach (var h in Heads)
            if (IsUnder(name, h)) return BosonHeads + name;
        if (name.StartsWith("model.", StringComparison.Ordinal)) return name["model.".Length..];
        return name;
    }

    /// <summary>The model's boson name → the name in <paramref name="layout"/>; the inverse of <see cref="ToModel"/>.</summary>
    public static string FromModel(string name, WeightsLayout layout)
    {
        if (layout == WeightsLayout.Boson) return name;
        if (IsUnder(name, BosonAudioEmbed)) return TfAudioEmbed + name[BosonAudioEmbed.Length..];
        foreach (var h in Heads)
            if (IsUnder(name, BosonHeads + h)) return name[BosonHeads.Length..];
        return "model." + name;
    }

    /// <summary>
    /// The layout module paths are written in, judged by their first segment: boson has no top-level <c>model</c> module
    /// and keeps the heads under <c>audio_decoder_proj</c>, so any transformers-only root decides. Mixed sets are an error.
    /// </summary>
    public static WeightsLayout Detect(IEnumerable<string> paths, WeightsLayout whenUndecided)
    {
        bool tf = false, boson = false;
        foreach (var p in paths)
        {
            if (IsUnder(p, "model") || Heads.Any(h => IsUnder(p, h))) tf = true;
            else boson = true;
        }
        if (tf && boson) throw new InvalidDataException("module paths mix the boson and the transformers (model.…) layouts");
        return tf ? WeightsLayout.TransformersV2 : boson ? WeightsLayout.Boson : whenUndecided;
    }

    public static string Name(WeightsLayout layout) => layout == WeightsLayout.Boson ? "boson" : "transformers";

    public static WeightsLayout Parse(string name) => name switch
    {
        "boson" => WeightsLayout.Boson,
        "transformers" or "transformers_v2" => WeightsLayout.TransformersV2,
        _ => throw new ArgumentException($"layout '{name}' is not boson or transformers"),
    };

    private static bool IsUnder(string name, string root) =>
        name == root || (name.StartsWith(root, StringComparison.Ordinal) && name.Length > root.Length && name[root.Length] == '.');
}
