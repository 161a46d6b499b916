using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Model;

namespace HiggsCluster.Training.Data;

/// <summary>
/// The delay columns training adds to every audio (the delay pattern shifts codebook k by k frames: codebooks − 1 more
/// columns), for checks that run without the model: `data validate` must count them as training does, or an entry
/// just under data.max_tokens passes validation and is refused by the run.
/// </summary>
public sealed record DelayColumns(int Codebooks, bool DelayPattern, string From)
{
    /// <summary>Higgs Audio v2's codebook count, for when no model config is at hand.</summary>
    public const int HiggsCodebooks = 8;

    public int PerAudio => DelayPattern ? Codebooks - 1 : 0;

    /// <summary>
    /// From the base model's config.json when <paramref name="baseCheckpoint"/> has one, else the Higgs default (8
    /// codebooks, delay pattern on). The seed collator preset trains without the delay pattern.
    /// </summary>
    public static DelayColumns Of(string? baseCheckpoint, string collatorPreset = CollatorPresets.Model)
    {
        if (collatorPreset == CollatorPresets.Seed) return new(HiggsCodebooks, false, "data.collator_preset seed, which has no delay pattern");
        var config = baseCheckpoint is null ? null : Path.Combine(baseCheckpoint, "config.json");
        if (config is not null && File.Exists(config))
        {
            var cfg = HiggsAudioConfig.Load(config);
            return new(cfg.AudioNumCodebooks, cfg.UseDelayPattern, $"the base model's config.json{(cfg.UseDelayPattern ? "" : ", which has no delay pattern")}");
        }
        return new(HiggsCodebooks, true, "the Higgs default; give --base or --config for the model's own");
    }

    /// <summary>What a report says it counted.</summary>
    public string Describe() =>
        $"length estimate counts {PerAudio} delay column{(PerAudio == 1 ? "" : "s")} per audio ({Codebooks} codebooks, from {From})";
}
