using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Lora;
using Xunit;

namespace HiggsCluster.Tests.Engine;

/// <summary>The one set of trainer books: best, patience, the trainer state, its checks, and checkpoints of today's schema.</summary>
[Collection("Engine"), Trait("Category", "Engine")]
public sealed class TrainerBookTests
{
    private static (TrainOptions O, TrainerBook Book) Book(int patience = 2, long seed = 42, int maxSteps = 6)
    {
        var o = new TrainOptions { BatchSize = 2, GradAccumulation = 1, Ranks = 1, MaxSteps = maxSteps, Seed = seed, EarlyStoppingPatience = patience };
        return (o, new TrainerBook(o, o.Plan(Enumerable.Range(0, 10).Select(i => (long)i))));
    }

    [Fact]
    public void The_baseline_is_the_first_best_and_patience_counts_validations_without_improvement()
    {
        var (_, book) = Book(patience: 2);
        Assert.True(book.Validated(0, 5.0));   // the baseline
        Assert.False(book.Validated(2, 5.0));  // equal is no improvement
        Assert.Equal(1, book.ValidationsWithoutImprovement);
        Assert.False(book.Validated(2, 4.0));  // the same step asked again is counted once
        Assert.Equal(1, book.ValidationsWithoutImprovement);
        Assert.False(book.PatienceSpent);
        Assert.True(book.Validated(4, 4.5));
        Assert.Equal((4.5, 4L, 0), (book.BestLoss!.Value, book.BestStep!.Value, book.ValidationsWithoutImprovement));
        Assert.False(book.Validated(6, double.NaN)); // a non-finite loss is never the best
        Assert.False(book.Validated(8, 4.6));
        Assert.True(book.PatienceSpent);
    }

    /// <summary>A worker that became the lead after validations it did not run writes the coordinator's counts.</summary>
    [Fact]
    public void Counts_adopted_from_the_coordinator_replace_a_late_books_own_and_go_into_the_trainer_state()
    {
        var (_, late) = Book(patience: 5);
        Assert.True(late.Validated(4, 3.0)); // its first validation: the best as far as this book knows
        late.Adopt(bestLoss: 2.5, validationsWithoutImprovement: 2);
        var st = TrainerBook.Deserialize(TrainerBook.Serialize(late.State(nonFiniteInARow: 0)), "test");
        Assert.Equal((2.5, 2), (st.BestValLoss!.Value, st.ValidationsWithoutImprovement));
        Assert.Null(st.BestStep); // the best was validated by another worker: its step is not known here

        var (_, same) = Book();
        same.Validated(0, 3.0);
        same.Validated(2, 3.5);
        same.Adopt(3.0, 1); // the same best as its own: its step stays
        Assert.Equal((0L, 1), (same.BestStep!.Value, same.ValidationsWithoutImprovement));
        Assert.False(same.Validated(4, 3.2)); // counting goes on from the adopted counts
        Assert.Equal(2, same.ValidationsWithoutImprovement);
        Assert.Throws<ArgumentOutOfRangeException>(() => same.Adopt(1.0, -1));

        // a coordinator that knows the best's step says so: the late lead's pruning spares that folder
        var (_, told) = Book(patience: 5);
        Assert.True(told.Validated(4, 3.0));
        told.Adopt(bestLoss: 2.5, validationsWithoutImprovement: 1, bestStep: 2);
        Assert.Equal((2.5, 2L, 1), (told.BestLoss!.Value, told.BestStep!.Value, told.ValidationsWithoutImprovement));
        Assert.Equal(2L, TrainerBook.Deserialize(TrainerBook.Serialize(told.State(nonFiniteInARow: 0)), "test").BestStep);
    }

    [Fact]
    public void The_best_of_a_logged_history_follows_the_same_rule()
    {
        var (o, _) = Book();
        ValidationResult V(long step, double loss) => new(step, loss, loss, 0, Array.Empty<double>(), 1, 1, 1);
        var plan = o.Plan(Enumerable.Range(0, 10).Select(i => (long)i));
        Assert.Equal(0, TrainerBook.BestOf(new[] { V(0, 3), V(1, 3), V(2, 3.5) }, o, plan)?.Step);
        Assert.Equal(2, TrainerBook.BestOf(new[] { V(0, 3), V(1, 3), V(2, 2.5), V(3, 2.5) }, o, plan)?.Step);
        Assert.Null(TrainerBook.BestOf(Array.Empty<ValidationResult>(), o, plan));
    }

    [Fact]
    public void A_state_goes_through_the_checkpoint_schema_and_one_of_another_plan_is_refused_leaving_the_book_as_it_was()
    {
        var (o, book) = Book();
        book.Validated(0, 3); book.Validated(1, 3.5);
        for (long s = 0; s < 3; s++) book.Advance(s);
        var bytes = TrainerBook.Serialize(book.State(nonFiniteInARow: 1));
        var st = TrainerBook.Deserialize(bytes, "test");

        var (_, other) = Book();
        other.Restore(st, "test", expectedStep: 3);
        Assert.Equal((3L, 0L, 3.0, 1), (other.NextStep, other.BestStep!.Value, other.BestLoss!.Value, other.ValidationsWithoutImprovement));
        Assert.Equal(book.ConsumedSamples(), other.ConsumedSamples());
        Assert.Equal(1, st.NonFiniteInARow);

        var (_, reseeded) = Book(seed: 7);
        var e = Assert.Throws<TrainerStateMismatchException>(() => reseeded.Restore(st, "ck"));
        Assert.Contains("consumed samples differ", e.Message);
        Assert.Equal(0, reseeded.NextStep);
        Assert.Throws<TrainerStateMismatchException>(() => Book().Book.Restore(st, "ck", expectedStep: 2));
        Assert.Throws<InvalidDataException>(() => TrainerBook.Deserialize("{\"NextStep\": \"x\""u8, "ck"));
    }

    /// <summary>
    /// trainer_state.json as the code before the shared books wrote it (these key names, config as Key/Value pairs):
    /// a checkpoint folder of that format resumes to the one-go run's adapter, bit for bit.
    /// </summary>
    [Fact]
    public void A_checkpoint_in_the_format_written_before_the_shared_books_still_resumes()
    {
        using var tmp = new TempDir();
        TrainOptions Opts(string dir)
        {
            var o = EngineWorkspace.Options(dir, maxSteps: 4);
            o.BatchSize = 2; o.ValSteps = 2; o.SaveSteps = 0; o.Plots = false; o.TensorBoard = false;
            return o;
        }
        TrainingOutcome full;
        using (var s = EngineWorkspace.Open(Opts(tmp.File("full")))) full = new TrainingRun(s, new LineProgress(TextWriter.Null, 100)).Run();
        using (var s = EngineWorkspace.Open(Opts(tmp.File("split")))) new TrainingRun(s, new LineProgress(TextWriter.Null, 100)) { StopAfterSteps = 2 }.Run();

        var stateFile = Path.Combine(tmp.File("split"), "checkpoints", TrainerCheckpoint.NameFor(2), TrainerCheckpoint.StateFile);
        var written = JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject();
        string[] legacyKeys = { "NextStep", "Epoch", "TotalSteps", "ConsumedSamples", "NonFiniteInARow", "BestValLoss", "BestStep",
            "ValidationsWithoutImprovement", "RngState", "Config" };
        Assert.Equal(legacyKeys.Order(), written.Select(kv => kv.Key).Order());
        var legacy = new JsonObject();
        foreach (var k in legacyKeys) legacy[k] = written[k]!.DeepClone();
        legacy["Config"] = new JsonArray(written["Config"]!.AsArray().Select(kv => (JsonNode)new JsonObject
            { ["Key"] = kv!["Key"]!.GetValue<string>(), ["Value"] = kv["Value"]!.GetValue<string>() }).ToArray());
        File.WriteAllText(stateFile, legacy.ToJsonString());

        TrainingOutcome resumed;
        using (var s = EngineWorkspace.Open(Opts(tmp.File("split")))) resumed = new TrainingRun(s, new LineProgress(TextWriter.Null, 100)) { ResumeFrom = "latest" }.Run();
        Assert.Equal(2, resumed.StepsRun);
        Assert.Equal(File.ReadAllBytes(Path.Combine(full.AdapterDir, LoraAdapter.WeightsFile)), File.ReadAllBytes(Path.Combine(resumed.AdapterDir, LoraAdapter.WeightsFile)));
        Assert.Equal(full.Best?.Step, resumed.Best?.Step);
    }
}
