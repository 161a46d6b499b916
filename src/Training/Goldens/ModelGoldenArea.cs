using System.Text.Json.Nodes;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

/// <summary>
/// Golden area <c>model</c>: training forward + losses (<c>forward</c> runs) and one LoRA/AdamW step
/// (<c>lora_step</c> runs) of tiny random HiggsAudioModels, in fp32 on the CPU.
/// </summary>
public sealed class ModelGoldenArea : IGoldenArea
{
    public string Name => "model";

    public GoldenOutputs Compute(GoldenRun run)
    {
        var p = run.CaseParameters;
        var cfg = HiggsAudioConfig.Load(run.File(Str(p, "config") ?? "config.json"));
        var model = new HiggsAudioModel(cfg, ScalarType.Float32, CPU);
        ModelWeights.LoadWeightsFrom(model, new[] { run.File(Str(p, "weights") ?? ModelWeights.SingleFile) }, run.CaseDir);
        var batch = HiggsBatch.FromNamedTensors(run.LoadInputs());
        var outputs = new GoldenOutputs();
        if (run.Run["merge_left_padding"] is JsonValue lp && lp.GetValue<bool>() != (batch.Length == 1))
            outputs.Failures.Add($"run says merge_left_padding={lp.GetValue<bool>()} but upstream left-pads exactly when the batch size is 1 (B={batch.Length})");
        var kind = Str(run.Run, "kind") ?? throw new InvalidDataException($"{run.Label}: run has no 'kind'");
        switch (kind)
        {
            case "forward":
                model.eval();
                using (no_grad()) AddForward(outputs, model.Forward(batch), batch, run);
                break;
            case "lora_step":
                LoraStep(outputs, model, batch, run);
                break;
            default:
                throw new NotSupportedException($"{run.Label}: model run kind '{kind}' is not implemented");
        }
        return outputs;
    }

    private static LossResult AddForward(GoldenOutputs o, HiggsAudioOutput r, HiggsBatch batch, GoldenRun run, bool withTensors = true)
    {
        var loss = HiggsLoss.Compute(r.Logits, r.ExpandedLabels, r.AudioLogits, batch.LabelAudioIds);
        if (withTensors)
        {
            o.Tensors["logits"] = r.Logits;
            o.Tensors["audio_logits"] = r.AudioLogits;
            if (r.ExpandedLabels is not null) o.Tensors["expanded_labels"] = r.ExpandedLabels;
            o.Tensors["expanded_input_ids"] = r.ExpandedInputIds;
            o.Tensors["merged_attention_mask"] = r.AttentionMask;
            o.Tensors["position_ids"] = r.PositionIds;
            o.Tensors["audio_out_mask"] = r.AudioOutMask.to_type(ScalarType.Byte);
            o.Tensors["audio_in_mask"] = r.AudioInMask.to_type(ScalarType.Byte);
            o.Tensors["audio_in_discrete_codes_mask"] = r.AudioInDiscreteCodesMask.to_type(ScalarType.Byte);
        }
        o.Tensors["text_loss"] = loss.TextLoss.detach();
        o.Tensors["audio_loss"] = loss.AudioLoss.detach();
        o.Tensors["loss"] = loss.Loss.detach();
        o.Tensors["codebook_losses"] = loss.CodebookLosses.detach();
        ApplyCompareWhere(o, run);
        return loss;
    }

    /// <summary>Tolerance entries may say <c>"compare_where": "&lt;tensor&gt; == &lt;value&gt;"</c>: compare only those rows.</summary>
    private static void ApplyCompareWhere(GoldenOutputs o, GoldenRun run)
    {
        if (run.Case["tolerances"] is not JsonObject tol) return;
        foreach (var (name, node) in tol)
        {
            if (node is not JsonObject t || Str(t, "compare_where") is not { } rule || !o.Tensors.ContainsKey(name)) continue;
            var parts = rule.Split("==", StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !double.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var value))
                throw new InvalidDataException($"{run.Label}: compare_where '{rule}' is not of the form '<tensor> == <number>'");
            if (!o.Tensors.TryGetValue(parts[0], out var m))
                throw new InvalidDataException($"{run.Label}: compare_where refers to '{parts[0]}', which the model area does not produce");
            o.CompareWhere[name] = m.to_type(ScalarType.Float64).Eq(value);
        }
    }

    private static void LoraStep(GoldenOutputs o, HiggsAudioModel model, HiggsBatch batch, GoldenRun run)
    {
        var r = run.Run;
        var adapter = LoraAdapter.Load(model,
            run.File(Str(r, "adapter_config") ?? LoraAdapter.ConfigFile),
            run.File(Str(r, "adapter") ?? LoraAdapter.WeightsFile));
        if (r["lora_modules"] is JsonArray mods)
        {
            var want = mods.Select(m => m!.GetValue<string>()).OrderBy(x => x, StringComparer.Ordinal).ToList();
            if (!want.SequenceEqual(adapter.ModulePaths))
                o.Failures.Add($"LoRA targets differ from lora_modules: ours [{string.Join(", ", adapter.ModulePaths.Except(want))}] extra, [{string.Join(", ", want.Except(adapter.ModulePaths))}] missing");
        }
        var opt = r["optimizer"] as JsonObject ?? throw new InvalidDataException($"{run.Label}: lora_step run has no 'optimizer'");
        var type = Str(opt, "type") ?? "torch.optim.AdamW";
        if (type != "torch.optim.AdamW") throw new NotSupportedException($"{run.Label}: optimizer '{type}' is not supported");
        double lr = opt["lr"]!.GetValue<double>(), eps = opt["eps"]?.GetValue<double>() ?? 1e-8, wd = opt["weight_decay"]?.GetValue<double>() ?? 0.01;
        var betas = opt["betas"] as JsonArray;
        double b1 = betas?[0]!.GetValue<double>() ?? 0.9, b2 = betas?[1]!.GetValue<double>() ?? 0.999;
        int steps = opt["steps"]?.GetValue<int>() ?? 1;
        double? maxNorm = opt["max_grad_norm"]?.GetValue<double>();

        var named = adapter.NamedParameters().ToList();
        // our AdamW (the training engine's), checked here against torch.optim.AdamW's recorded update
        var optimizer = new Engine.LoraAdamW(named.Select(x => (x.Key, x.Param)), b1, b2, eps, wd);
        model.train();
        for (int step = 0; step < steps; step++)
        {
            optimizer.ZeroGrad();
            var output = model.Forward(batch);
            var loss = AddForward(o, output, batch, run, withTensors: false);
            loss.Loss.backward();
            if (step == 0)
            {
                foreach (var (key, prm) in named) o.Tensors["grad." + key] = prm.grad!.detach().clone();
                o.Tensors["grad_norm"] = TotalNorm(named.Select(x => x.Param));
            }
            Engine.GradClip.ClipGradNorm(named.Select(x => x.Param), maxNorm);
            optimizer.Step(lr);
        }
        foreach (var (key, prm) in named) o.Tensors["updated." + key] = prm.detach().clone();
    }

    private static Tensor TotalNorm(IEnumerable<Parameter> ps) =>
        stack(ps.Select(p => p.grad!.detach().to_type(ScalarType.Float32).norm()).ToList()).norm();

    private static string? Str(JsonObject o, string k) => o[k] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
