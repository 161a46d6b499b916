using HiggsCluster.Tests.Harness;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using HiggsCluster.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class RunMachineTests
{
    // global batch 4 = micro 2 × accumulation 1 × 2 ranks
    private static RunSpec Spec(int epochs = 1, int save = 0, int val = 0, long maxSteps = 0, double valFraction = 0, int patience = 0) =>
        ToyCluster.Spec("r1", ranks: 2, micro: 2, accum: 1, epochs: epochs, shards: 4, save: save, val: val, maxSteps: maxSteps, seed: 9,
            valFraction: valFraction, patience: patience);

    /// <summary>Loaders up, then every shard reported with ids 0..samples-1 (minus <paramref name="unusable"/>).</summary>
    private static (RunState, List<RunEffect>) Prepared(RunSpec spec, long samples = 20, int world = 0, long gen = 1, params long[] unusable)
    {
        var fx = new List<RunEffect>();
        var (s, e) = RunMachine.Handle(RunState.Submit(spec), new MembershipChanged(new[] { "L1", "L2" }, gen, world));
        fx.AddRange(e);
        for (int shard = 0; shard < spec.ShardCount; shard++)
        {
            var ids = Enumerable.Range(0, (int)samples).Select(i => (long)i).Where(i => i % spec.ShardCount == shard).ToArray();
            (s, e) = RunMachine.Handle(s, new ShardsReported(new[] { shard }, ids, ids.Except(unusable).ToArray(), ids.Intersect(unusable).Select(i => $"entry {i} bad").ToArray()));
            fx.AddRange(e);
        }
        return (s, fx);
    }

    private static (RunState, IReadOnlyList<RunEffect>) Up(RunState s, int world, long gen = 1)
    {
        var (next, fx) = RunMachine.Handle(s, new MembershipChanged(new[] { "L1", "L2" }, gen, world));
        return (next, fx);
    }

    private static double[] Stats(double loss) => new[] { 1.0, loss };

    /// <summary>Every rank reports the step in flight with the same checksum.</summary>
    private static (RunState, IReadOnlyList<RunEffect>) ReportAll(RunState s, ulong checksum = 5)
    {
        var fx = new List<RunEffect>();
        var f = s.InFlight!;
        for (int r = 0; r < s.World; r++)
        {
            var (s2, e) = RunMachine.Handle(s, new StepReported(s.Generation, f.GlobalStep, r, Stats(1.0 + r), checksum));
            s = s2; fx.AddRange(e);
        }
        return (s, fx);
    }

    [Fact]
    public void Submitted_run_prepares_shards_plans_trains_every_step_and_completes_after_the_final_checkpoint()
    {
        var s = RunState.Submit(Spec());
        Assert.Equal(RunPhase.Submitted, s.Phase);
        var (s1, fx) = RunMachine.Handle(s, new MembershipChanged(Array.Empty<string>(), 0, 0));
        Assert.Equal(RunPhase.Submitted, s1.Phase); // no loader: nothing to prepare with
        (s1, fx) = RunMachine.Handle(s1, new MembershipChanged(new[] { "L1" }, 0, 0));
        Assert.Equal(RunPhase.Preparing, s1.Phase);
        Assert.Equal(4, fx.OfType<AssignShardsEffect>().Single().Table.Owner.Count);

        var (p, pfx) = Prepared(Spec(), 20, world: 2);
        Assert.Equal(RunPhase.Training, p.Phase);
        var planned = pfx.OfType<RunPlannedEffect>().Single();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), planned.TrainIds.Order());
        Assert.Equal(5, p.Plan!.TotalSteps);
        var commits = new List<StepCommittedEffect>();
        IReadOnlyList<RunEffect> last = pfx;
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(i, p.InFlight!.GlobalStep);
            (p, last) = ReportAll(p);
            commits.AddRange(last.OfType<StepCommittedEffect>());
        }
        Assert.Equal(RunPhase.Checkpointing, p.Phase);
        Assert.Contains(last, e => e is CheckpointEffect { Tag: "final", Final: true, GlobalStep: 5 });
        (p, last) = RunMachine.Handle(p, new CheckpointFinished(5));
        Assert.Equal(RunPhase.Completed, p.Phase);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), commits.SelectMany(c => c.Record.SampleIds).Order());
        Assert.Equal(new[] { 2.0, 3.0 }, commits[0].Totals); // ranks' statistics summed: weights 1+1, losses 1+2
        Assert.Equal(1.5, StepStats.Loss(commits[0].Totals));
        Assert.IsType<CommandRejected>(Assert.Single(RunMachine.Handle(p, new ValidationRequested()).Effects));
    }

    [Fact]
    public void The_plan_is_the_single_process_plan_over_usable_ids_after_the_same_split()
    {
        var spec = Spec(valFraction: 0.2);
        var (s, fx) = Prepared(spec, 40, world: 1, unusable: new long[] { 3, 17 });
        var planned = fx.OfType<RunPlannedEffect>().Single();
        var all = Enumerable.Range(0, 40).Select(i => (long)i).ToList();
        var (train, val) = DataSplit.Split(all, spec.Seed, 0.2);
        Assert.Equal(train.Where(i => i is not 3 and not 17), planned.TrainIds);
        Assert.Equal(val.Where(i => i is not 3 and not 17), planned.ValidationIds);
        Assert.Equal(2, planned.Problems.Length);
        var reference = new SamplePlan(planned.TrainIds, spec.Seed, 2, 1, 2, 1);
        Assert.Equal(reference.StepSamples(0), s.InFlight is null ? Array.Empty<long>() : s.InFlight.MicroBatches.SelectMany(w => w.SelectMany(m => m)).ToArray());
    }

    [Fact]
    public void A_run_without_usable_samples_fails_with_the_problems()
    {
        var (s, fx) = Prepared(Spec(), 3, world: 1, unusable: new long[] { 0, 1, 2 });
        Assert.Equal(RunPhase.Failed, s.Phase);
        Assert.Contains("entry 0 bad", fx.OfType<RunEndedEffect>().Single().Reason);
    }

    [Fact]
    public void Validation_runs_first_as_the_baseline_then_every_val_steps_and_at_the_end()
    {
        var (s, fx) = Prepared(Spec(val: 2, valFraction: 0.25), 40, world: 1);
        Assert.Equal(RunPhase.Validating, s.Phase);
        Assert.Equal(0, fx.OfType<ValidateEffect>().Single().GlobalStep);
        (s, var e) = RunMachine.Handle(s, new ValidationFinished(0, 3.0));
        Assert.Single(e.OfType<StartStepEffect>());
        (s, e) = ReportAll(s);
        Assert.Single(e.OfType<StartStepEffect>());
        (s, e) = ReportAll(s);
        Assert.Equal(2, e.OfType<ValidateEffect>().Single().GlobalStep);
        (s, e) = RunMachine.Handle(s, new ValidationFinished(2, 2.0));
        int validations = 2;
        while (!s.Finishing)
        {
            if (s.Phase == RunPhase.Validating) { validations++; (s, e) = RunMachine.Handle(s, new ValidationFinished(s.Cursor.GlobalStep, 2.0)); }
            else (s, e) = ReportAll(s);
        }
        Assert.Equal(RunPhase.Validating, s.Phase); // the final validation, then the final checkpoint
        Assert.Equal(s.Plan!.TotalSteps, s.Cursor.GlobalStep);
        Assert.Equal(1 + (s.Plan.TotalSteps - 1) / 2, validations); // baseline + every 2 steps before the end
        (s, e) = RunMachine.Handle(s, new ValidationFinished(s.Cursor.GlobalStep, 1.0));
        Assert.Single(e.OfType<CheckpointEffect>(), c => c.Final);
    }

    [Fact]
    public void Early_stopping_ends_with_the_final_checkpoint_after_patience_validations_without_a_new_best()
    {
        var (s, _) = Prepared(Spec(val: 1, valFraction: 0.25, patience: 2), 40, world: 1);
        (s, var e) = RunMachine.Handle(s, new ValidationFinished(0, 3.0)); // baseline: best
        (s, e) = ReportAll(s);
        (s, e) = RunMachine.Handle(s, new ValidationFinished(1, 2.0));     // new best
        (s, e) = ReportAll(s);
        (s, e) = RunMachine.Handle(s, new ValidationFinished(2, 2.5));     // 1 without improvement
        Assert.Single(e.OfType<StartStepEffect>());
        (s, e) = ReportAll(s);
        (s, e) = RunMachine.Handle(s, new ValidationFinished(3, 2.1));     // 2: stop
        Assert.Empty(e.OfType<StartStepEffect>());
        Assert.Empty(e.OfType<ValidateEffect>());              // just validated: no second final validation
        Assert.Single(e.OfType<CheckpointEffect>(), c => c.Final && c.GlobalStep == 3);
        (s, e) = RunMachine.Handle(s, new CheckpointFinished(3));
        Assert.Equal(RunPhase.Completed, s.Phase);
        Assert.True(s.EarlyStopped);
        Assert.Contains("early stop", s.Detail);
    }

    [Fact]
    public void The_best_validations_step_goes_with_its_loss_through_checkpoints_and_a_roll_back()
    {
        var (s, _) = Prepared(Spec(val: 1, valFraction: 0.25), 40, world: 1);
        (s, _) = RunMachine.Handle(s, new ValidationFinished(0, 3.0)); // the baseline is the first best
        Assert.Equal(0L, s.BestValidationStep);
        (s, _) = ReportAll(s);
        (s, _) = RunMachine.Handle(s, new ValidationFinished(1, 2.0));
        (s, _) = ReportAll(s);
        (s, _) = RunMachine.Handle(s, new ValidationFinished(2, 2.5));
        Assert.Equal((2.0, 1L), (s.BestValidationLoss!.Value, s.BestValidationStep!.Value));

        // a checkpoint at step 2 remembers the best of step 1; a later best is undone by rolling back to it
        var d = s.Run.Evolve(new RunEvents.CheckpointStarted("r1", 2, "step-2", false)).Evolve(new RunEvents.CheckpointDone("r1", 2, "/out/step-2"));
        Assert.Equal(1L, d.LastCheckpoint!.BestStep);
        d = d.Evolve(new RunEvents.ValidationDone("r1", 2, 1.5));
        Assert.Equal(2L, d.BestValidationStep);
        d = d.Evolve(new RunEvents.RolledBack("r1", 2, "/out/step-2", 2.0, 1));
        Assert.Equal((2.0, 1L, 1), (d.BestValidationLoss!.Value, d.BestValidationStep!.Value, d.ValidationsWithoutImprovement));

        // a resumed run starts from its checkpoint's best step (and rolls back to it)
        var (r, _) = Prepared(Spec(val: 2, valFraction: 0.25) with { StartStep = 3, ResumeBestLoss = 1.0, ResumeBestStep = 2, ResumeFrom = "/ck/3" }, 40, world: 1);
        Assert.Equal(2L, r.BestValidationStep);
        var back = r.Run.Evolve(new RunEvents.ValidationDone("r1", 3, 0.5)).Evolve(new RunEvents.RolledBack("r1", 3, "/ck/3", 1.0, 0));
        Assert.Equal(2L, back.BestValidationStep);
    }

    [Fact]
    public void A_resumed_run_starts_at_its_checkpoint_with_the_earlier_steps_in_the_ledger()
    {
        var (s, fx) = Prepared(Spec(val: 2, valFraction: 0.25) with { StartStep = 3, ResumeBestLoss = 1.0 }, 40, world: 1);
        Assert.Empty(fx.OfType<ValidateEffect>());             // no baseline validation on resume
        Assert.Equal(3, fx.OfType<StartStepEffect>().Single().GlobalStep);
        Assert.Equal(new long[] { 0, 1, 2 }, s.Cursor.Ledger.Select(r => r.GlobalStep));
        Assert.All(s.Cursor.Ledger, r => Assert.Equal(-1, r.Generation));
        Assert.Equal(s.Plan!.StepSamples(1), s.Cursor.Ledger[1].SampleIds);
        var (bad, _) = Prepared(Spec() with { StartStep = 99 }, 40, world: 1);
        Assert.Equal(RunPhase.Failed, bad.Phase);
    }

    [Fact]
    public void A_step_commits_only_when_every_rank_reported_and_duplicates_or_stale_reports_do_nothing()
    {
        var (s, _) = Prepared(Spec(), world: 3, gen: 7);
        var (s1, fx) = RunMachine.Handle(s, new StepReported(7, 0, 0, Stats(1), 5));
        (s1, fx) = RunMachine.Handle(s1, new StepReported(7, 0, 0, Stats(1), 5)); // duplicate
        Assert.Empty(fx);
        (s1, fx) = RunMachine.Handle(s1, new StepReported(6, 0, 1, Stats(1), 5)); // old generation
        Assert.Empty(fx);
        (s1, fx) = RunMachine.Handle(s1, new StepReported(7, 0, 1, Stats(1), 5));
        Assert.Empty(fx.OfType<StepCommittedEffect>());
        (s1, fx) = RunMachine.Handle(s1, new StepReported(7, 0, 2, Stats(1), 5));
        Assert.Single(fx.OfType<StepCommittedEffect>());
        Assert.Equal(1, s1.Cursor.GlobalStep);
    }

    [Fact]
    public void Membership_change_abandons_the_step_and_replans_the_same_samples_for_the_new_group()
    {
        var (s, fx) = Prepared(Spec(), world: 2, gen: 1);
        var first = fx.OfType<StartStepEffect>().Single();
        (s, _) = RunMachine.Handle(s, new StepReported(1, 0, 0, Stats(1), 5));
        (s, var e) = Up(s, 1, gen: 2);
        var again = e.OfType<StartStepEffect>().Single();
        Assert.Equal(0, again.GlobalStep);
        Assert.Single(again.MicroBatches); // one worker takes both plan ranks: the global batch stays the same
        Assert.Equal(first.MicroBatches.SelectMany(r => r.SelectMany(m => m)).Order(), again.MicroBatches.SelectMany(r => r.SelectMany(m => m)).Order());
        (s, e) = RunMachine.Handle(s, new StepReported(1, 0, 1, Stats(1), 5)); // the old group's late report
        Assert.Empty(e);
        Assert.Empty(s.View.Reports);
        (s, e) = ReportAll(s);
        Assert.Equal(2, e.OfType<StepCommittedEffect>().Single().Record.Generation);
    }

    [Fact]
    public void Batches_are_planned_one_step_ahead_and_again_only_when_the_group_changed()
    {
        var (s, fx) = Prepared(Spec(epochs: 2), 20, world: 2);
        var first = fx.OfType<StartStepEffect>().Single();
        Assert.False(first.AlreadyPlanned);
        Assert.NotNull(first.Next);
        (s, var e) = ReportAll(s);
        var second = e.OfType<StartStepEffect>().Single();
        Assert.True(second.AlreadyPlanned);
        Assert.Equal(first.Next!.SelectMany(w => w.SelectMany(m => m)), second.MicroBatches.SelectMany(w => w.SelectMany(m => m)));
        (s, e) = Up(s, 1, gen: 2); // the group changed: the look-ahead was cut for two workers, plan again
        var again = e.OfType<StartStepEffect>().Single();
        Assert.False(again.AlreadyPlanned);
        while (s.InFlight is { Next: not null }) (s, e) = ReportAll(s);
        Assert.Equal(s.Plan!.TotalSteps - 1, s.InFlight!.GlobalStep); // the last step has nothing to look ahead to
    }

    [Fact]
    public void Workers_leaving_pauses_training_until_a_group_returns()
    {
        var (s, _) = Prepared(Spec(), world: 2);
        var (s1, fx) = Up(s, 0, gen: 2);
        Assert.Null(s1.InFlight);
        Assert.Empty(fx.OfType<StartStepEffect>());
        (s1, fx) = Up(s1, 1, gen: 3);
        Assert.Equal(0, fx.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void The_first_step_waits_for_the_start_workers_later_steps_go_on_with_fewer()
    {
        var (s, fx) = Prepared(Spec() with { StartWorkers = 2 }, world: 1);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Contains("1 of 2", s.Detail);
        (s, var e) = Up(s, 2, gen: 2);
        Assert.Single(e.OfType<StartStepEffect>());
        (s, _) = ReportAll(s);
        (s, e) = Up(s, 1, gen: 3);
        Assert.Equal(1, e.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void Diverged_checksums_fail_the_run_naming_the_ranks()
    {
        var (s, _) = Prepared(Spec(), world: 2);
        (s, _) = RunMachine.Handle(s, new StepReported(1, 0, 0, Stats(1), 5));
        var (s1, fx) = RunMachine.Handle(s, new StepReported(1, 0, 1, Stats(1), 6));
        Assert.Equal(RunPhase.Failed, s1.Phase);
        Assert.Contains("rank 1", fx.OfType<RunEndedEffect>().Single().Reason);
        Assert.Empty(fx.OfType<StepCommittedEffect>());
    }

    [Fact]
    public void Save_steps_checkpoint_before_the_next_step()
    {
        var (s, _) = Prepared(Spec(save: 2), 40, world: 1);
        (s, var fx) = ReportAll(s);
        Assert.Single(fx.OfType<StartStepEffect>()); // step 1 → no save
        (s, fx) = ReportAll(s);
        Assert.Equal(RunPhase.Checkpointing, s.Phase);
        Assert.Equal(2, fx.OfType<CheckpointEffect>().Single().GlobalStep);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.IsType<CommandRejected>(Assert.Single(RunMachine.Handle(s, new CheckpointFinished(1)).Effects));
        (s, fx) = RunMachine.Handle(s, new CheckpointFinished(2));
        Assert.Equal(RunPhase.Training, s.Phase);
        Assert.Equal(2, fx.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void On_request_checkpoint_and_stop()
    {
        var (s, _) = Prepared(Spec(), 40, world: 1);
        (s, _) = RunMachine.Handle(s, new CheckpointRequested("mine"));
        (s, var fx) = ReportAll(s);
        Assert.Equal("mine", fx.OfType<CheckpointEffect>().Single().Tag);
        (s, fx) = RunMachine.Handle(s, new StopRequested(Checkpoint: true));
        Assert.Equal(RunPhase.Stopped, s.Phase);
        Assert.Contains(fx, e => e is CheckpointEffect { Tag: "stop", GlobalStep: 1 });
    }

    [Fact]
    public void Max_steps_ends_the_run_early()
    {
        var (s, _) = Prepared(Spec(epochs: 3, maxSteps: 2), 40, world: 1);
        (s, _) = ReportAll(s);
        (s, var fx) = ReportAll(s);
        Assert.Equal(RunPhase.Checkpointing, s.Phase);
        Assert.Equal(2, s.Cursor.GlobalStep);
        Assert.Single(fx.OfType<CheckpointEffect>(), c => c.Final);
    }

    [Fact]
    public void Bad_specs_are_refused()
    {
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec(epochs: 0)));
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec().WithOptions(o => o with { Ranks = 0 })));
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec() with { StartWorkers = 0 }));
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec() with { ShardCount = 0 }));
    }
}
