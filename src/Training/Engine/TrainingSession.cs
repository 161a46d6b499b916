using HiggsCluster.Planning;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Everything a single-process run needs, built from validated options: the data (<see cref="RunData"/>: samples all
/// built and checked up front, so steps never stall on audio encoding and bad entries are reported before training),
/// the model with LoRA, the split and the plan. A test can pass its own <see cref="IAudioCodeSource"/>.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    /// <summary>Ids of entries from a separate validation manifest start here.</summary>
    public const long ValidationIdBase = DataSplit.ValidationIdBase;

    private readonly RunData _data;

    public required TrainOptions Options { get; init; }
    public required HiggsAudioModel Model { get; init; }
    public required LoraAdapter Adapter { get; init; }
    public SampleStore Store => _data.Store;
    public required IReadOnlyList<long> TrainIds { get; init; }
    public required IReadOnlyList<long> ValidationIds { get; init; }
    public required SamplePlan Plan { get; init; }
    public required TrainingEngine Engine { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public Device Device => Model.Device;

    private TrainingSession(RunData data) { _data = data; }

    /// <param name="bases">The process's host copy of the base, when the process builds more models after this one.</param>
    public static TrainingSession Open(TrainOptions o, TextWriter log, IAudioCodeSource? codes = null, BaseModels? bases = null)
    {
        o.Validate();
        var model = RunModel.LoadBase(o, bases);
        RunData data;
        try { data = RunData.Open(o, model.Config, codes); }
        catch { model.Dispose(); throw; }
        var warnings = data.Warnings.ToList();
        var (train, val) = data.Split(o);
        train = data.Usable(train, warnings); val = data.Usable(val, warnings);
        if (train.Count == 0)
        {
            data.Dispose(); model.Dispose();
            throw new TrainConfigException("data.manifest", NoUsableSample(warnings));
        }
        if (CorpusCounts.EmptyCorpus(o, train) is { } empty)
        {
            data.Dispose(); model.Dispose();
            throw new TrainConfigException($"data.manifests[{empty}].path", $"{o.Manifests[empty].Path}: no usable training sample, so its weight cannot be drawn; {NoUsableSample(warnings)}");
        }
        log.WriteLine($"data: {train.Count} training and {val.Count} validation samples" + (warnings.Count > 0 ? $", {warnings.Count} warnings" : ""));

        var adapter = RunModel.Attach(model, o);
        var plan = o.Plan(train);
        foreach (var line in CorpusCounts.Lines(CorpusCounts.Of(o, train, val, plan))) log.WriteLine("  corpus " + line);
        var engine = TrainingEngine.Create(model, adapter, o, plan.TotalSteps);
        return new TrainingSession(data)
        {
            Options = o, Model = model, Adapter = adapter, TrainIds = train, ValidationIds = val,
            Plan = plan, Engine = engine, Warnings = warnings,
        };
    }

    /// <summary>Why no training sample is left: the first warnings (the caller never gets to print them) and how many more.</summary>
    public static string NoUsableSample(IReadOnlyList<string> warnings, int shown = 5) =>
        "no usable training sample" + (warnings.Count == 0 ? "" : ": " + string.Join("; ", warnings.Take(shown))
            + (warnings.Count > shown ? $"; … and {warnings.Count - shown} more" : ""));

    /// <summary>Frees the data and the model: a process that goes on training elsewhere (the cluster's workers) holds no second copy.</summary>
    public void Dispose()
    {
        _data.Dispose();
        Model.Dispose();
    }
}
