using HiggsCluster.Coordinator.Run;
using HiggsCluster.GpuWorker.HandOvers;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Cluster;
using Xunit;

namespace HiggsCluster.Tests.Fault;

/// <summary>
/// The decisions behind a worker restart, on the pure machines: who holds the committed state, who must receive it,
/// and that no step starts before the newcomers installed it.
/// </summary>
[Trait("Category", "Fault")]
public sealed class HandOverMachineTests
{
    private static readonly string[] Loaders = { "L1" };

    private static RunSpec Spec(int save = 0) => ToyCluster.Spec("h", ranks: 2, micro: 1, accum: 1, epochs: 1, shards: 1, save: save, val: 0, maxSteps: 0, seed: 3,
        startWorkers: 2);

    private static (RunState S, List<RunEffect> Fx) Run(RunState s, params RunCommand[] cmds)
    {
        var all = new List<RunEffect>();
        foreach (var c in cmds) { var (n, fx) = RunMachine.Handle(s, c); s = n; all.AddRange(fx); }
        return (s, all);
    }

    private static MembershipChanged Group(long gen, params string[] workers) => new(Loaders, gen, workers.Length, workers);

    /// <summary>A run of 8 samples (4 steps of 2) trained by A and B for <paramref name="steps"/> steps.</summary>
    private static RunState Trained(int steps)
    {
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(Spec()), Group(1, "A", "B"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        Assert.True(s.Synced.SetEquals(new[] { "A", "B" }), "before any commit every member holds the initial state");
        for (int i = 0; i < steps; i++)
            (s, _) = Run(s, new StepReported(1, i, 0, new[] { 1.0, 1.0 }, 7), new StepReported(1, i, 1, new[] { 1.0, 1.0 }, 7));
        Assert.Equal(steps, s.Cursor.GlobalStep);
        return s;
    }

    [Fact]
    public void A_newcomer_gets_the_state_from_a_live_member_before_the_retried_step_starts()
    {
        var s = Trained(3);
        Assert.Equal(3, s.InFlight!.GlobalStep);
        // B dies in step 3: the step is abandoned, A goes on alone (it holds the state)
        var (s1, fx) = Run(s, Group(2, "A"));
        Assert.Equal(3, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        Assert.Empty(fx.OfType<HandOverEffect>());
        // C (a restarted process: new id) joins while step 3 is in flight with A alone
        (s1, fx) = Run(s1, Group(3, "A", "C"));
        var t = Assert.Single(fx.OfType<HandOverEffect>());
        Assert.Equal((3L, 3L, "A"), (t.Generation, t.GlobalStep, t.From));
        Assert.Equal(new[] { "C" }, t.To);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Null(s1.InFlight);
        // C's registration says it holds nothing: still waiting; A's report changes nothing
        (s1, fx) = Run(s1, new WorkerProgress("C", 0), new WorkerProgress("A", 3), new StepReported(3, 3, 0, new[] { 1.0, 1.0 }, 7));
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Empty(fx.OfType<StepCommittedEffect>());
        // a state of another step does not count
        (s1, fx) = Run(s1, new WorkerInstalled("C", 2));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (s1, fx) = Run(s1, new WorkerInstalled("C", 3));
        var start = Assert.Single(fx.OfType<StartStepEffect>());
        Assert.Equal((3L, 3L, 2), (start.Generation, start.GlobalStep, start.MicroBatches.Length));
        Assert.Null(s1.HandOver);
        // every member holds it (B, gone before any commit since, is still known to hold it too)
        Assert.True(new[] { "A", "C" }.All(s1.Synced.Contains));
    }

    [Fact]
    public void A_failed_hand_over_picks_another_source_and_fails_the_run_when_none_holds_the_state()
    {
        var s = Trained(2);
        var (s1, fx) = Run(s, Group(2, "A", "B", "C"));
        Assert.Equal("A", Assert.Single(fx.OfType<HandOverEffect>()).From);
        (s1, fx) = Run(s1, new HandOverRefused("B", 2, "not me")); // not the source: ignored
        Assert.Empty(fx);
        (s1, fx) = Run(s1, new HandOverRefused("A", 2, "holds 1 steps"));
        var again = Assert.Single(fx.OfType<HandOverEffect>());
        Assert.Equal("B", again.From);
        Assert.Equal(new[] { "A", "C" }, again.To);
        // the last holder refuses too (e.g. still applying a commit sent again after a take-over): the run waits for a
        // worker to register holding the state rather than failing, and hands it over from there
        (s1, fx) = Run(s1, new HandOverRefused("B", 2, "busy"));
        Assert.NotEqual(RunPhase.Failed, s1.Phase);
        Assert.Empty(fx.OfType<HandOverEffect>());
        (s1, fx) = Run(s1, new WorkerProgress("B", 2));
        Assert.Equal("B", Assert.Single(fx.OfType<HandOverEffect>()).From);

        // every member that applied the last commit is gone: nothing can continue the run from memory
        var (gone, gfx) = Run(s, Group(2, "C", "D"));
        Assert.Equal(RunPhase.Failed, gone.Phase);
        Assert.Contains("no live worker holds the committed state of step 2", Assert.Single(gfx.OfType<RunEndedEffect>()).Reason);
    }

    [Fact]
    public void A_member_that_left_and_came_back_is_stale_unless_it_reports_the_committed_step()
    {
        var s = Trained(1);
        var (s1, _) = Run(s, Group(2, "A"));
        (s1, _) = Run(s1, new StepReported(2, 1, 0, new[] { 2.0, 2.0 }, 7)); // step 1 committed by A alone
        Assert.Equal(2, s1.Cursor.GlobalStep);
        var (s2, fx) = Run(s1, Group(3, "A", "B"));
        Assert.Equal(new[] { "B" }, Assert.Single(fx.OfType<HandOverEffect>()).To);
        // B's stale registration (1 step) does not make it current; a report of 2 steps does (it had applied it)
        (s2, fx) = Run(s2, new WorkerProgress("B", 1));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (s2, fx) = Run(s2, new WorkerProgress("B", 2));
        Assert.Single(fx.OfType<StartStepEffect>());
    }

    /// <summary>
    /// On a loaded machine both workers can see each other unreachable for a moment: the coordinator drops both, then
    /// both register again. No step was committed meanwhile, so both still hold the committed state: the run goes on,
    /// with no hand-over, instead of failing for want of a holder (a slow-lane failure before this change).
    /// </summary>
    [Fact]
    public void Workers_dropped_for_a_moment_and_back_without_a_commit_still_hold_the_state()
    {
        var s = Trained(2);
        var (s1, fx) = Run(s, Group(2, "A"), Group(3), Group(4, "A"), Group(5, "A", "B"));
        Assert.NotEqual(RunPhase.Failed, s1.Phase);
        Assert.Empty(fx.OfType<RunEndedEffect>());
        Assert.Empty(fx.OfType<HandOverEffect>());
        Assert.Equal((5L, 2L), (fx.OfType<StartStepEffect>().Last().Generation, fx.OfType<StartStepEffect>().Last().GlobalStep));
        // a commit without B makes B stale: back again, it gets the state handed over
        (s1, _) = Run(s1, Group(6, "A"), new StepReported(6, 2, 0, new[] { 2.0, 2.0 }, 7));
        Assert.Equal(3, s1.Cursor.GlobalStep);
        (s1, fx) = Run(s1, Group(7, "A", "B"));
        Assert.Equal(new[] { "B" }, Assert.Single(fx.OfType<HandOverEffect>()).To);
    }

    [Fact]
    public void After_a_coordinator_take_over_the_run_waits_for_a_worker_to_say_it_holds_the_state_instead_of_failing()
    {
        var s = Trained(2).Recovered();
        Assert.True(s.AwaitProgress);
        // the old group re-registers: nobody is known to hold step 2 yet, so nothing starts and nothing fails
        var (s1, fx) = Run(s, Group(5, "A", "B"));
        Assert.NotEqual(RunPhase.Failed, s1.Phase);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Empty(fx.OfType<HandOverEffect>());
        // A says it applied 2 steps: B (not heard from yet) gets the state from A, then the step starts
        (s1, fx) = Run(s1, new WorkerProgress("A", 2));
        Assert.False(s1.AwaitProgress);
        var t = Assert.Single(fx.OfType<HandOverEffect>());
        Assert.Equal("A", t.From);
        Assert.Equal(new[] { "B" }, t.To);
        (s1, fx) = Run(s1, new WorkerProgress("B", 2));
        Assert.Equal(2, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        // once known, losing every holder fails the run as before
        var (gone, _) = Run(s1, Group(6, "C"));
        Assert.Equal(RunPhase.Failed, gone.Phase);
    }

    /// <summary>
    /// The whole cluster was lost: the journal says step 2 is committed, but the workers that come back are new (they
    /// hold the initial adapter). Training them on would silently restart from the wrong state, and the checkpoint in
    /// progress must not be written from it: the run rolls back to its last checkpoint (step 1), every member loads it,
    /// and only then does step 1 run again; a worker joining meanwhile loads it too.
    /// </summary>
    [Fact]
    public void When_no_worker_holding_the_state_comes_back_the_run_rolls_back_to_its_last_checkpoint()
    {
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(Spec(save: 1)), Group(1, "A", "B"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        (s, _) = Run(s, new StepReported(1, 0, 0, new[] { 1.0, 1.0 }, 7), new StepReported(1, 0, 1, new[] { 1.0, 1.0 }, 7));
        Assert.Equal(RunPhase.Checkpointing, s.Phase);
        (s, _) = Run(s, new CheckpointFinished(1, "out/h/checkpoints/checkpoint-0000001"));
        (s, _) = Run(s, new StepReported(1, 1, 0, new[] { 1.0, 1.0 }, 7), new StepReported(1, 1, 1, new[] { 1.0, 1.0 }, 7));
        Assert.Equal(RunPhase.Checkpointing, s.Phase); // step 2's checkpoint in progress when everything died

        var (r, fx) = Run(s.Recovered(), Group(7, "C", "D"), new WorkerProgress("C", 0), new WorkerProgress("D", 0));
        Assert.NotEqual(RunPhase.Failed, r.Phase);
        Assert.Empty(fx.OfType<CheckpointEffect>()); // nobody vouched for step 2's state
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r, fx) = Run(r, new ResumeWaitOver());
        var restore = Assert.Single(fx.OfType<RestoreEffect>());
        Assert.Equal((7L, 1L, "out/h/checkpoints/checkpoint-0000001", true), (restore.Generation, restore.GlobalStep, restore.Path, restore.RollBack));
        Assert.Equal(new[] { "C", "D" }, restore.Workers);
        Assert.Equal(1, r.Cursor.GlobalStep);
        Assert.Equal(new long[] { 0 }, r.Cursor.Ledger.Select(e => e.GlobalStep)); // step 1's commit is undone
        Assert.Equal(RunPhase.Training, r.Phase);
        Assert.Empty(fx.OfType<CheckpointEffect>());
        Assert.Empty(fx.OfType<StartStepEffect>());

        (r, fx) = Run(r, new WorkerInstalled("C", 1), Group(8, "C", "D", "E"));
        var again = Assert.Single(fx.OfType<RestoreEffect>());
        Assert.Equal(new[] { "D", "E" }, again.Workers); // C has it; D had not answered yet; E is new
        Assert.False(again.RollBack);
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r, fx) = Run(r, new WorkerInstalled("D", 1));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r, fx) = Run(r, new WorkerInstalled("E", 1));
        Assert.Equal(1, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        Assert.Null(r.Restoring);
    }

    [Fact]
    public void Without_a_checkpoint_the_run_rolls_back_to_its_start()
    {
        var (r, fx) = Run(Trained(2).Recovered(), Group(5, "C", "D"), new ResumeWaitOver());
        var restore = Assert.Single(fx.OfType<RestoreEffect>());
        Assert.Equal((0L, (string?)null), (restore.GlobalStep, restore.Path));
        Assert.Empty(r.Cursor.Ledger);
        (_, fx) = Run(r, new WorkerInstalled("C", 0), new WorkerInstalled("D", 0));
        Assert.Equal(0, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
    }

    [Fact]
    public void After_a_take_over_a_holder_that_registers_in_time_gets_the_interrupted_checkpoint_written()
    {
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(Spec(save: 1)), Group(1, "A", "B"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        (s, _) = Run(s, new StepReported(1, 0, 0, new[] { 1.0, 1.0 }, 7), new StepReported(1, 0, 1, new[] { 1.0, 1.0 }, 7));
        var (r, fx) = Run(s.Recovered(), Group(7, "C", "B"), new WorkerProgress("C", 0));
        Assert.Empty(fx.OfType<CheckpointEffect>());
        (r, fx) = Run(r, new WorkerProgress("B", 1));
        Assert.Equal("B", Assert.Single(fx.OfType<CheckpointEffect>()).Worker); // the holder writes it, not the newcomer
    }

    [Fact]
    public void Before_the_first_commit_new_workers_after_a_take_over_hold_the_start_state_and_the_run_goes_on()
    {
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(Spec()), Group(1, "A", "B"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        Assert.Equal(0, s.Cursor.GlobalStep);
        // a fresh worker's 0 applied steps are the committed state here
        var (r, fx) = Run(s.Recovered(), Group(4, "C", "D"), new WorkerProgress("C", 0), new WorkerProgress("D", 0));
        Assert.NotEqual(RunPhase.Failed, r.Phase);
        Assert.Equal(0, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        // and when they never say so, the wait's end adopts them: all hold the start state
        var (q, _) = Run(s.Recovered(), Group(4, "C", "D"));
        (q, fx) = Run(q, new ResumeWaitOver());
        Assert.NotEqual(RunPhase.Failed, q.Phase);
        Assert.Equal(0, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
    }

    [Fact]
    public void A_hand_over_that_does_not_complete_in_time_is_asked_for_again_only_for_those_still_without_it()
    {
        var (s, _) = Run(Trained(2), Group(2, "A", "B", "C", "D"));
        Assert.Equal(new[] { "C", "D" }, s.HandOver!.To);
        (s, _) = Run(s, new WorkerInstalled("C", 2));
        // a late timer of another generation or step changes nothing
        var (same, fx) = Run(s, new HandOverOverdue(1, 2), new HandOverOverdue(2, 1));
        Assert.Empty(fx);
        Assert.Same(s.HandOver, same.HandOver);
        // D never got its chunks: asked again, for D only
        (s, fx) = Run(s, new HandOverOverdue(2, 2));
        var t = Assert.Single(fx.OfType<HandOverEffect>());
        Assert.Equal((2L, 2L), (t.Generation, t.GlobalStep));
        Assert.Equal(new[] { "D" }, t.To);
        Assert.Empty(fx.OfType<StartStepEffect>());
        (s, fx) = Run(s, new WorkerInstalled("D", 2));
        Assert.Equal(2, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        // once everyone holds it, a late timer does nothing
        (_, fx) = Run(s, new HandOverOverdue(2, 2));
        Assert.Empty(fx);
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_needs_no_hand_over_before_its_first_commit()
    {
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var spec = Spec() with { StartStep = 2, StartWorkers = 1 };
        var (s, _) = Run(RunState.Submit(spec), Group(1, "A"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        Assert.Equal(2, s.InFlight!.GlobalStep);
        // every worker loads the run's checkpoint when it begins the run: a member joining before the first commit holds it too
        var (s1, fx) = Run(s, Group(2, "A", "B"));
        Assert.Empty(fx.OfType<HandOverEffect>());
        Assert.Equal(2, Assert.Single(fx.OfType<StartStepEffect>()).MicroBatches.Length);
    }

    [Fact]
    public void Checkpoints_go_to_a_member_holding_the_state()
    {
        var spec = Spec(save: 2);
        var ids = Enumerable.Range(0, 8).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(spec), Group(1, "A", "B"), new ShardsReported(new[] { 0 }, ids, ids, Array.Empty<string>()));
        (s, _) = Run(s, new StepReported(1, 0, 0, new[] { 1.0, 1.0 }, 7), new StepReported(1, 0, 1, new[] { 1.0, 1.0 }, 7));
        // C joins in front of A (rank 0) while step 1 runs; once healed, step 1 commits and the checkpoint goes to a synced member
        var (s1, fx) = Run(s, Group(2, "C", "A", "B"));
        Assert.Equal("A", Assert.Single(fx.OfType<HandOverEffect>()).From);
        (s1, _) = Run(s1, new WorkerInstalled("C", 1));
        (s1, fx) = Run(s1, new StepReported(2, 1, 0, new[] { 1.0, 1.0 }, 7), new StepReported(2, 1, 1, new[] { 1.0, 1.0 }, 7), new StepReported(2, 1, 2, new[] { 1.0, 1.0 }, 7));
        Assert.Equal("C", Assert.Single(fx.OfType<CheckpointEffect>()).Worker); // every member committed step 1: rank 0 leads again
    }

    [Fact]
    public void State_chunks_stay_under_the_budget_and_join_back_to_the_same_tensors()
    {
        var rnd = new Random(4);
        var big = new float[5000];
        for (int i = 0; i < big.Length; i++) big[i] = (float)rnd.NextDouble();
        var state = new[]
        {
            new NamedTensor("lora.a", TensorData.FromFloats(big.AsSpan(0, 300), 3, 100)),
            new NamedTensor("lora.big", TensorData.FromFloats(big, 50, 100)),               // 20000 bytes: split in pieces
            new NamedTensor("adamw.step.a", TensorData.FromFloats(new[] { 4f })),            // 0-dim
            new NamedTensor("torch.rng", new TensorData(TensorDType.UInt8, new long[] { 7 }, new byte[] { 1, 2, 3, 4, 5, 6, 7 })),
        };
        var chunks = HandOverChunks.Split("r", 9, 4, state, budget: 4096);
        Assert.True(chunks.Count >= 6);
        Assert.All(chunks, c => Assert.True(c.Tensors.Sum(t => t.Tensor.Data.LongLength) <= 4096 + 24 + 8 * 3, "chunk over budget"));
        Assert.All(chunks, c => Assert.True(Messages.Serialization.BulkSerializer.EncodedSize(c) < 8192));

        // out of order, with a duplicate and a late chunk of an older hand-over
        HandOverAssembly? a = null;
        NamedTensor[]? done = null;
        var stale = HandOverChunks.Split("r", 9, 3, state, budget: 4096)[0];
        foreach (var c in chunks.Reverse().Prepend(chunks[1]).Append(stale))
        {
            if (done is not null) break;
            (a, done) = HandOverAssembly.Add(a, c);
        }
        Assert.NotNull(done);
        Assert.Equal(state.Select(t => t.Name), done!.Select(t => t.Name));
        foreach (var (want, got) in state.Zip(done)) Assert.True(want.Tensor.SameAs(got.Tensor), want.Name);

        Assert.Throws<ArgumentException>(() => HandOverChunks.Split("r", 1, 1, new[] { new NamedTensor("x@piece0", state[3].Tensor) }));
        var bad = chunks[0] with { Tensors = chunks[0].Tensors.Where(t => t.Name != HandOverChunks.Header).ToArray() };
        Assert.Contains(HandOverChunks.Header, Assert.Throws<InvalidDataException>(() => HandOverAssembly.Add(null, bad)).Message);
    }
}
