using HiggsCluster.Cli.Grammar;
using System.Diagnostics;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs adapter merge --base DIR --adapter DIR --out DIR [--dtype bf16|fp32] [--shard-gb N]`: folds a LoRA adapter into
/// the base weights and writes a plain checkpoint (config.json + safetensors, sharded like save_pretrained when large)
/// that loads without LoRA. The output keeps the base's key layout and config.json (only the dtype fields change when
/// --dtype differs) and gets the base's tokenizer and generation files, so it can replace the base folder as it is.
/// </summary>
public static class AdapterMergeCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string Required(string key) => args.Required("adapter merge", key);
        var baseDir = Required("base");
        var adapterDir = Required("adapter");
        var outDir = Required("out");
        var shardGb = args.Get("shard-gb") is { } sg
            ? (double.TryParse(sg, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var g) && g > 0
                ? g : throw new CliUsageException($"--shard-gb must be a positive number, got '{sg}'"))
            : ModelWeights.DefaultMaxShardBytes / 1e9;
        if (Path.GetFullPath(outDir) == Path.GetFullPath(baseDir))
            throw new CliUsageException("adapter merge: --out must differ from --base (the base weights would be overwritten while read)");
        var clock = Stopwatch.StartNew();
        try
        {
            var stored = ModelWeights.StoredDType(baseDir);
            var dtype = args.Get("dtype") switch
            {
                null => stored,
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                "fp32" or "float32" => ScalarType.Float32,
                var other => throw new CliUsageException($"--dtype must be bf16 or fp32, got '{other}'"),
            };
            // The base is held in its stored dtype (exact, and half the memory of fp32 for a bf16 checkpoint); each merged
            // weight is computed in fp32 and cast once to the output dtype while it is written.
            var model = ModelWeights.LoadModel(baseDir, stored);
            var adapter = LoraAdapter.Load(model, adapterDir);
            adapter.MergeAndExport(outDir, dtype, (long)(shardGb * 1e9), WeightsFolder.ConfigFor(baseDir, dtype, stored));
            var copied = WeightsFolder.CopySideFiles(baseDir, outDir);
            stdout.WriteLine($"adapter merge: {adapter.ModulePaths.Count} LoRA targets (r={adapter.Config.R}, alpha={adapter.Config.Alpha}) " +
                             $"folded into {baseDir}; wrote {SafetensorsName(dtype)} checkpoint ({LayoutKeys.Name(model.Config.Layout)} layout) to {outDir} " +
                             $"with {copied.Count} tokenizer/other files in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
        {
            stderr.WriteLine($"higgs adapter merge: {e.Message}");
            return 1;
        }
    }

    private static string SafetensorsName(ScalarType t) => t == ScalarType.BFloat16 ? "bf16" : t == ScalarType.Float32 ? "fp32" : t.ToString();
}
