using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Hyperion;
using HiggsCluster.Planning;

namespace HiggsCluster.Messages.Serialization;

/// <summary>
/// How Hyperion carries a <see cref="RunSpec"/>, and how it still reads the RunSpec rows of journals written while the
/// spec held its config as a string map. Hyperion reads an object's fields by position under its type name, so the
/// old layout cannot be read into today's RunSpec: the old type name is redirected to <see cref="RunSpecV0"/> (the old
/// layout), which converts its map once through <see cref="RunOptionKeys"/>. For that redirect to touch only old bytes,
/// today's RunSpec never travels under its own type name: it goes as <see cref="RunSpecJson"/>.
/// </summary>
public static class RunSpecHyperion
{
    private const string OldRunSpecName = "HiggsCluster.Messages.RunSpec, HiggsCluster.Messages";

    /// <summary>The settings a plain Hyperion serializer of this system has, with the RunSpec forms added.</summary>
    public static HyperionSerializerSettings Settings(ExtendedActorSystem system)
    {
        var configured = new HyperionSerializer(system).Settings;
        return configured
            .WithPackageNameOverrides(configured.PackageNameOverrides.Append(RedirectOldRunSpec).ToList())
            .WithSurrogates(configured.Surrogates.Concat(Surrogates).ToList());
    }

    /// <summary>Writing a RunSpec takes the first (JSON); reading picks by the type read.</summary>
    public static readonly IReadOnlyList<Surrogate> Surrogates = new[]
    {
        Surrogate.Create<RunSpec, RunSpecJson>(RunSpecJson.Of, j => j.ToSpec()),
        Surrogate.Create<RunSpec, RunSpecV0>(_ => throw new NotSupportedException("RunSpec is written as RunSpecJson"), v => v.ToSpec()),
    };

    private static string RedirectOldRunSpec(string typeName) =>
        typeName.StartsWith(OldRunSpecName, StringComparison.Ordinal) ? typeof(RunSpecV0).AssemblyQualifiedName! : typeName;

    private static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>A RunSpec on the wire: its JSON (the options under their config keys).</summary>
    public sealed record RunSpecJson(string Text)
    {
        public static RunSpecJson Of(RunSpec s) => new(JsonSerializer.Serialize(s, Json));
        public RunSpec ToSpec() => JsonSerializer.Deserialize<RunSpec>(Text, Json) ?? throw new InvalidDataException("RunSpec: null");
    }

    /// <summary>RunSpec as journals before typed options stored it (field names and types are Hyperion's format: keep them).</summary>
    public sealed record RunSpecV0(
        string RunId, Dictionary<string, string> Config, int Ranks, int MicroBatchSize, int GradAccumulation, double Epochs, long MaxSteps,
        int SaveSteps, int ValSteps, ulong Seed, double ValidationFraction, bool SeparateValidation, int ShardCount, int StartWorkers,
        int EarlyStoppingPatience, string? ResumeFrom, long StartStep, double? ResumeBestLoss, int ResumeValidationsWithoutImprovement)
    {
        public RunSpec ToSpec() => new(RunId, PlanNumbersOfOldSpecs.Fold(RunOptionKeys.FromResolved(Config ?? new()), Ranks, MicroBatchSize,
            GradAccumulation, Epochs, MaxSteps, SaveSteps, ValSteps, Seed, ValidationFraction, EarlyStoppingPatience), ShardCount, StartWorkers)
        {
            ResumeFrom = ResumeFrom, StartStep = StartStep,
            ResumeBestLoss = ResumeBestLoss, ResumeValidationsWithoutImprovement = ResumeValidationsWithoutImprovement,
        };
    }
}
