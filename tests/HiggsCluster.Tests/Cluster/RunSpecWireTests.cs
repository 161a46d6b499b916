using HiggsCluster.Tests.Harness;
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using Akka.Serialization;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Serialization;
using HiggsCluster.Planning;
using HiggsCluster.Tests.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A run spec with its typed options crosses the wire whole (SubmitRun, AssignShards, RunPlanned go through Hyperion),
/// never under the old RunSpec type name, and an old journal's RunSpec (a config map) is read through the config parser.
/// </summary>
public sealed class RunSpecWireTests
{
    private const string OldName = "HiggsCluster.Messages.RunSpec, HiggsCluster.Messages";

    internal static RunSpec Spec() => new RunSpec("wire", RunOptionsTests.Unusual() with { SaveSteps = 11, ValSteps = 0, ValidationFraction = 0.125, EarlyStoppingPatience = 3 }, 8, 2)
    {
        ResumeFrom = "/out/run/checkpoints/checkpoint-4", StartStep = 4, ResumeBestLoss = 1.25,
        ResumeValidationsWithoutImprovement = 1,
    };

    private static async Task With(Action<ActorSystem> body)
    {
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka("wire", b => b.AddHiggsSerializers())).Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        try { body(host.Services.GetRequiredService<ActorSystem>()); }
        finally { await host.StopAsync(CancellationToken.None); }
    }

    private static (object Back, byte[] Bytes) RoundTrip(ActorSystem sys, object message)
    {
        var ser = sys.Serialization.FindSerializerFor(message);
        Assert.IsType<HyperionSerializer>(ser);
        var bytes = ser.ToBinary(message);
        return (sys.Serialization.Deserialize(bytes, ser.Identifier, Akka.Serialization.Serialization.ManifestFor(ser, message)), bytes);
    }

    [Fact]
    public async Task The_messages_carrying_a_spec_round_trip_it_with_every_option()
    {
        var spec = Spec();
        await With(sys =>
        {
            foreach (var message in new object[] { new SubmitRun(spec), new AssignShards("wire", 3, 8, new[] { 1, 5 }, spec), new RunPlanned(spec, new long[] { 4, 2 }, new long[] { 9 }) })
            {
                var (back, bytes) = RoundTrip(sys, message);
                var got = back switch { SubmitRun s => s.Spec, AssignShards a => a.Spec, RunPlanned p => p.Spec, _ => throw new Xunit.Sdk.XunitException(back.GetType().Name) };
                Assert.Equal(spec, got);
                Assert.Equal(spec.Options.Manifests, got.Options.Manifests);
                Assert.Equal(spec.Options.SampleTexts, got.Options.SampleTexts);
                // the old type name only ever appears in old journals, so redirecting it cannot touch a new message
                Assert.DoesNotContain(OldName, Encoding.UTF8.GetString(bytes));
            }
        });
    }

    /// <summary>The plan's numbers are read from the options, never kept beside them: changing an option changes the plan, and the wire holds each once.</summary>
    [Fact]
    public void The_plan_numbers_are_the_options_own()
    {
        var spec = Spec().WithOptions(o => o with { Ranks = 5, BatchSize = 7, ValidationManifest = null, EarlyStoppingPatience = 4, Seed = 99 });
        Assert.Equal((5, 7, false, 4, 99UL), (spec.Ranks, spec.MicroBatchSize, spec.SeparateValidation, spec.EarlyStoppingPatience, spec.Seed));
        Assert.True(Spec().SeparateValidation); // a validation manifest is what makes validation separate
        var json = RunSpecHyperion.RunSpecJson.Of(spec).Text;
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.False(doc.RootElement.TryGetProperty("Ranks", out _), json);
        Assert.False(doc.RootElement.TryGetProperty("MicroBatchSize", out _), json);
        Assert.Equal(5, doc.RootElement.GetProperty("Options").GetProperty("train.ranks").GetInt32());
        Assert.Equal(spec, RunSpecHyperion.RunSpecJson.Of(spec).ToSpec());
    }

    /// <summary>
    /// Bytes of a RunSpec as Hyperion wrote it before typed options: RunSpecV0 has the old layout, and its type name in
    /// the bytes (a 4-byte length, then the name) is put back to the old RunSpec's.
    /// </summary>
    private static byte[] OldRunSpecBytes(ActorSystem sys, Dictionary<string, string> config)
    {
        var old = new RunSpecHyperion.RunSpecV0("old", config, 2, 1, 2, 1, 0, 5, 0, 11, 0.2, false, 3, 1, 2, null, 0, null, 0);
        var bytes = new HyperionSerializer((ExtendedActorSystem)sys).ToBinary(old);
        var name = Encoding.UTF8.GetBytes(typeof(RunSpecHyperion.RunSpecV0).FullName + ", HiggsCluster.Messages");
        int at = bytes.AsSpan().IndexOf(name);
        Assert.True(at >= 4 && BitConverter.ToInt32(bytes, at - 4) == name.Length, "RunSpecV0's type name not found in the bytes");
        var oldName = Encoding.UTF8.GetBytes(OldName);
        return bytes[..(at - 4)].Concat(BitConverter.GetBytes(oldName.Length)).Concat(oldName).Concat(bytes[(at + name.Length)..]).ToArray();
    }

    [Fact]
    public async Task An_old_spec_with_a_config_map_is_read_once_through_the_config_parser()
    {
        await With(sys =>
        {
            var hyperion = sys.Serialization.FindSerializerForType(typeof(SubmitRun));
            Assert.IsType<HyperionSerializer>(hyperion);
            var config = new Dictionary<string, string>
            {
                ["train.lr"] = "0.001", ["lora.targets"] = "q_proj, v_proj", ["train.schedule"] = "linear", ["model.device"] = "cuda:1",
                ["data.manifests"] = "[{\"path\":\"/d/a.jsonl\",\"weight\":\"3\"},{\"path\":\"/d/b.jsonl\"}]", ["train.output_dir"] = "/out/old",
            };
            var spec = Assert.IsType<RunSpec>(hyperion.FromBinary(OldRunSpecBytes(sys, config), typeof(object)));
            // the old layout's plan numbers are what its coordinator planned with: they go into the options
            var numbers = (Ranks: 2, BatchSize: 1, GradAccumulation: 2, Epochs: 1.0, MaxSteps: 0L, SaveSteps: 5, ValSteps: 0, Seed: 11L, ValidationFraction: 0.2, EarlyStoppingPatience: 2);
            Assert.Equal(RunOptionKeys.FromResolved(config) with
            {
                Ranks = numbers.Ranks, BatchSize = numbers.BatchSize, GradAccumulation = numbers.GradAccumulation, Epochs = numbers.Epochs,
                MaxSteps = numbers.MaxSteps, SaveSteps = numbers.SaveSteps, ValSteps = numbers.ValSteps, Seed = numbers.Seed,
                ValidationFraction = numbers.ValidationFraction, EarlyStoppingPatience = numbers.EarlyStoppingPatience,
            }, spec.Options);
            Assert.Equal(new RunOptions() with
            {
                Ranks = numbers.Ranks, BatchSize = numbers.BatchSize, GradAccumulation = numbers.GradAccumulation, Epochs = numbers.Epochs,
                MaxSteps = numbers.MaxSteps, SaveSteps = numbers.SaveSteps, ValSteps = numbers.ValSteps, Seed = numbers.Seed,
                ValidationFraction = numbers.ValidationFraction, EarlyStoppingPatience = numbers.EarlyStoppingPatience,
                Lr = 0.001, LoraTargets = new[] { "q_proj", "v_proj" }, Schedule = ScheduleKind.Linear, Device = "cuda:1",
                Manifests = new[] { new Corpus("/d/a.jsonl", 3), new Corpus("/d/b.jsonl", 1) }, OutputDir = "/out/old",
            }, spec.Options);
            Assert.Equal(("old", 2, 3, 0.2, 5, 2), (spec.RunId, spec.Ranks, spec.ShardCount, spec.ValidationFraction, spec.SaveSteps, spec.EarlyStoppingPatience));

            // a value the parser refuses is refused when the row is read, naming its key
            var badBytes = OldRunSpecBytes(sys, new() { ["train.lr"] = "fast" });
            var bad = Record.Exception(() => { hyperion.FromBinary(badBytes, typeof(object)); });
            var e = Assert.IsType<TrainConfigException>(Unwrap(bad));
            Assert.Equal("train.lr", e.Key);
        });
    }

    private static Exception? Unwrap(Exception? e)
    {
        while (e is not null and not TrainConfigException && e.InnerException is not null) e = e.InnerException;
        return e;
    }
}
