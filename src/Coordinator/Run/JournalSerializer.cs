using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Serialization;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Serialization;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// The coordinator journal's own format: each event is UTF-8 JSON <c>{"v":1, ...}</c> under a stable manifest name
/// (<see cref="Names"/>), written from the explicit records in <see cref="JournalFormat"/>, so renaming or moving a
/// C# type never breaks the replay of an existing journal. Journals written before this format hold Hyperion rows
/// (serializer id -5); Akka picks the reader by the id stored with each row, so they still replay as long as the
/// event records keep their names (a committed fixture journal checks this).
/// </summary>
public sealed class JournalSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 7732;
    public const string Name = "higgs-journal";
    /// <summary>The format version written; readers refuse newer ones with a clear message rather than guess.</summary>
    public const int Version = 1;

    /// <summary>Stable manifest name of each event kind (the journal's vocabulary: never change an existing one).</summary>
    public static readonly IReadOnlyDictionary<Type, string> Names = new Dictionary<Type, string>
    {
        [typeof(RunEvents.Submitted)] = "run-submitted",
        [typeof(RunEvents.Planned)] = "run-planned",
        [typeof(RunEvents.StepCommitted)] = "step-committed",
        [typeof(RunEvents.CheckpointStarted)] = "checkpoint-started",
        [typeof(RunEvents.CheckpointDone)] = "checkpoint-done",
        [typeof(RunEvents.ValidationStarted)] = "validation-started",
        [typeof(RunEvents.ValidationDone)] = "validation-done",
        [typeof(RunEvents.CheckpointRequested)] = "checkpoint-requested",
        [typeof(RunEvents.ValidationRequested)] = "validation-requested",
        [typeof(RunEvents.Ended)] = "run-ended",
        [typeof(RunEvents.RolledBack)] = "rolled-back",
        [typeof(WorkerGroupFormed)] = "worker-group-formed",
    };

    private static readonly JsonSerializerOptions Json = new()
    {
        // losses and totals may be NaN or infinite (a diverged step is journalled before the run fails)
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => Names.TryGetValue(o.GetType(), out var name) ? name
        : throw new ArgumentException($"the coordinator journal has no format for {o.GetType().FullName}");

    public override byte[] ToBinary(object obj) => JsonSerializer.SerializeToUtf8Bytes(JournalFormat.ToRecord(obj), JournalFormat.RecordType(Manifest(obj)), Json);

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var type = JournalFormat.RecordType(manifest);
        JournalFormat.Record record;
        try { record = (JournalFormat.Record?)JsonSerializer.Deserialize(bytes, type, Json) ?? throw new JsonException("null event"); }
        catch (JsonException e)
        {
            throw new InvalidDataException($"coordinator journal: {manifest} event is not valid ({e.Message}): {Preview(bytes)}");
        }
        if (record.V != Version)
            throw new InvalidDataException($"coordinator journal: {manifest} event of format version {record.V}; this coordinator reads version {Version}");
        return record.ToEvent();
    }

    private static string Preview(byte[] bytes) => Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 120));
}

/// <summary>The journal's records, one per event kind: their property names are the format (do not rename them).</summary>
public static class JournalFormat
{
    public abstract record Record
    {
        [JsonPropertyName("v")] public int V { get; init; } = JournalSerializer.Version;
        public abstract object ToEvent();
    }

    /// <summary>
    /// A run spec. Its options are written typed under "options" (each value under its config key, see
    /// <see cref="HiggsCluster.Planning.RunOptions"/>); rows written before typed options hold "config", the resolved
    /// key → text map, read once through the config parser (<see cref="HiggsCluster.Planning.RunOptionKeys"/>).
    /// Same format version: a row has one of the two. The plan's numbers are written beside the options, as the format
    /// has them; read back they go into the options (<see cref="PlanNumbersOfOldSpecs"/>), equal to them for every row
    /// written since the spec took its numbers from the options.
    /// </summary>
    public sealed record Spec(
        [property: JsonPropertyName("runId")] string RunId,
        [property: JsonPropertyName("config"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Dictionary<string, string>? Config,
        [property: JsonPropertyName("ranks")] int Ranks,
        [property: JsonPropertyName("microBatchSize")] int MicroBatchSize,
        [property: JsonPropertyName("gradAccumulation")] int GradAccumulation,
        [property: JsonPropertyName("epochs")] double Epochs,
        [property: JsonPropertyName("maxSteps")] long MaxSteps,
        [property: JsonPropertyName("saveSteps")] int SaveSteps,
        [property: JsonPropertyName("valSteps")] int ValSteps,
        [property: JsonPropertyName("seed")] ulong Seed,
        [property: JsonPropertyName("validationFraction")] double ValidationFraction,
        [property: JsonPropertyName("separateValidation")] bool SeparateValidation,
        [property: JsonPropertyName("shardCount")] int ShardCount,
        [property: JsonPropertyName("startWorkers")] int StartWorkers,
        [property: JsonPropertyName("earlyStoppingPatience")] int EarlyStoppingPatience,
        [property: JsonPropertyName("resumeFrom")] string? ResumeFrom,
        [property: JsonPropertyName("startStep")] long StartStep,
        [property: JsonPropertyName("resumeBestLoss")] double? ResumeBestLoss,
        [property: JsonPropertyName("resumeValidationsWithoutImprovement")] int ResumeValidationsWithoutImprovement,
        [property: JsonPropertyName("options"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] HiggsCluster.Planning.RunOptions? Options = null,
        [property: JsonPropertyName("resumeBestStep"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? ResumeBestStep = null)
    {
        public static Spec Of(RunSpec s) => new(s.RunId, null, s.Ranks, s.MicroBatchSize, s.GradAccumulation, s.Epochs, s.MaxSteps,
            s.SaveSteps, s.ValSteps, s.Seed, s.ValidationFraction, s.SeparateValidation, s.ShardCount, s.StartWorkers,
            s.EarlyStoppingPatience, s.ResumeFrom, s.StartStep, s.ResumeBestLoss, s.ResumeValidationsWithoutImprovement, s.Options, s.ResumeBestStep);

        public RunSpec ToSpec() => new(RunId, PlanNumbersOfOldSpecs.Fold(Options ?? HiggsCluster.Planning.RunOptionKeys.FromResolved(Config ?? new()),
            Ranks, MicroBatchSize, GradAccumulation, Epochs, MaxSteps, SaveSteps, ValSteps, Seed, ValidationFraction, EarlyStoppingPatience),
            ShardCount, StartWorkers)
        {
            ResumeFrom = ResumeFrom, StartStep = StartStep,
            ResumeBestLoss = ResumeBestLoss, ResumeValidationsWithoutImprovement = ResumeValidationsWithoutImprovement,
            ResumeBestStep = ResumeBestStep,
        };
    }

    public sealed record Submitted([property: JsonPropertyName("spec")] Spec Spec) : Record
    { public override object ToEvent() => new RunEvents.Submitted(Spec.ToSpec()); }

    public sealed record Planned([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("trainIds")] long[] TrainIds,
        [property: JsonPropertyName("validationIds")] long[] ValidationIds, [property: JsonPropertyName("problems")] string[] Problems) : Record
    { public override object ToEvent() => new RunEvents.Planned(RunId, TrainIds, ValidationIds, Problems); }

    public sealed record StepCommitted([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("epoch")] int Epoch, [property: JsonPropertyName("generation")] long Generation,
        [property: JsonPropertyName("world")] int World, [property: JsonPropertyName("sampleIds")] long[] SampleIds,
        [property: JsonPropertyName("totals")] double[] Totals) : Record
    { public override object ToEvent() => new RunEvents.StepCommitted(RunId, new StepRecord(Step, Epoch, Generation, World, SampleIds), Totals); }

    public sealed record CheckpointStarted([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("tag")] string Tag, [property: JsonPropertyName("final")] bool Final) : Record
    { public override object ToEvent() => new RunEvents.CheckpointStarted(RunId, Step, Tag, Final); }

    public sealed record CheckpointDone([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("path")] string? Path) : Record
    { public override object ToEvent() => new RunEvents.CheckpointDone(RunId, Step, Path); }

    public sealed record ValidationStarted([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("final")] bool Final) : Record
    { public override object ToEvent() => new RunEvents.ValidationStarted(RunId, Step, Final); }

    public sealed record ValidationDone([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("loss")] double Loss) : Record
    { public override object ToEvent() => new RunEvents.ValidationDone(RunId, Step, Loss); }

    public sealed record CheckpointRequested([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("tag")] string? Tag) : Record
    { public override object ToEvent() => new RunEvents.CheckpointRequested(RunId, Tag); }

    public sealed record ValidationRequested([property: JsonPropertyName("runId")] string RunId) : Record
    { public override object ToEvent() => new RunEvents.ValidationRequested(RunId); }

    public sealed record Ended([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("phase")] string Phase,
        [property: JsonPropertyName("reason")] string Reason) : Record
    {
        public override object ToEvent() => new RunEvents.Ended(RunId, Enum.TryParse<RunPhase>(Phase, out var p) && Enum.IsDefined(p) ? p
            : throw new InvalidDataException($"coordinator journal: run {RunId} ended in unknown phase '{Phase}'"), Reason);
    }

    public sealed record RolledBack([property: JsonPropertyName("runId")] string RunId, [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("path")] string? Path, [property: JsonPropertyName("bestLoss")] double? BestLoss,
        [property: JsonPropertyName("validationsWithoutImprovement")] int ValidationsWithoutImprovement) : Record
    { public override object ToEvent() => new RunEvents.RolledBack(RunId, Step, Path, BestLoss, ValidationsWithoutImprovement); }

    public sealed record GroupFormed([property: JsonPropertyName("generation")] long Generation) : Record
    { public override object ToEvent() => new WorkerGroupFormed(Generation); }

    public static Type RecordType(string manifest) => manifest switch
    {
        "run-submitted" => typeof(Submitted),
        "run-planned" => typeof(Planned),
        "step-committed" => typeof(StepCommitted),
        "checkpoint-started" => typeof(CheckpointStarted),
        "checkpoint-done" => typeof(CheckpointDone),
        "validation-started" => typeof(ValidationStarted),
        "validation-done" => typeof(ValidationDone),
        "checkpoint-requested" => typeof(CheckpointRequested),
        "validation-requested" => typeof(ValidationRequested),
        "run-ended" => typeof(Ended),
        "rolled-back" => typeof(RolledBack),
        "worker-group-formed" => typeof(GroupFormed),
        _ => throw new InvalidDataException($"coordinator journal: unknown event kind '{manifest}'"),
    };

    public static Record ToRecord(object e) => e switch
    {
        RunEvents.Submitted s => new Submitted(Spec.Of(s.Spec)),
        RunEvents.Planned p => new Planned(p.RunId, p.TrainIds, p.ValidationIds, p.Problems),
        RunEvents.StepCommitted c => new StepCommitted(c.RunId, c.Record.GlobalStep, c.Record.Epoch, c.Record.Generation, c.Record.World, c.Record.SampleIds, c.Totals),
        RunEvents.CheckpointStarted c => new CheckpointStarted(c.RunId, c.GlobalStep, c.Tag, c.Final),
        RunEvents.CheckpointDone c => new CheckpointDone(c.RunId, c.GlobalStep, c.Path),
        RunEvents.ValidationStarted v => new ValidationStarted(v.RunId, v.GlobalStep, v.Final),
        RunEvents.ValidationDone v => new ValidationDone(v.RunId, v.GlobalStep, v.Loss),
        RunEvents.CheckpointRequested c => new CheckpointRequested(c.RunId, c.Tag),
        RunEvents.ValidationRequested v => new ValidationRequested(v.RunId),
        RunEvents.Ended x => new Ended(x.RunId, x.Phase.ToString(), x.Reason),
        RunEvents.RolledBack r => new RolledBack(r.RunId, r.GlobalStep, r.Path, r.BestLoss, r.ValidationsWithoutImprovement),
        WorkerGroupFormed g => new GroupFormed(g.Generation),
        _ => throw new ArgumentException($"the coordinator journal has no format for {e.GetType().FullName}"),
    };
}
