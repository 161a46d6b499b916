using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The coordinator's journal, without actors: the durable events a live run journals fold into the same durable
/// state, by value, after every command, and a replayed run resumes where it was once a worker group is back.
/// </summary>
[Trait("Category", "Cluster")]
public class RunReplayTests
{
    private static RunSpec Spec(int save = 0, int val = 0, double valFraction = 0, int epochs = 2, int patience = 0) =>
        ToyCluster.Spec("j1", ranks: 2, micro: 2, accum: 1, epochs: epochs, shards: 4, save: save, val: val, seed: 9, startWorkers: 2,
            valFraction: valFraction, patience: patience);

    /// <summary>A live machine that journals as the coordinator shell does, and a replica fed only the journal.</summary>
    private sealed class Journalled
    {
        public RunState Live;
        public readonly List<RunEvent> Journal = new();
        public readonly List<RunEffect> Effects = new();

        public Journalled(RunSpec spec)
        {
            Live = RunState.Submit(spec);
            Journal.Add(new RunEvents.Submitted(spec));
        }

        /// <summary>A coordinator that took over <paramref name="recovered"/>, journalling after <paramref name="journal"/>.</summary>
        public Journalled(RunState recovered, IEnumerable<RunEvent> journal)
        {
            Live = recovered;
            Journal.AddRange(journal);
        }

        public IReadOnlyList<RunEffect> Do(RunCommand cmd)
        {
            var t = RunMachine.Handle(Live, cmd);
            Journal.AddRange(t.Journalled);
            Live = t.State;
            Effects.AddRange(t.Effects);
            Assert.Equal(Live.Run, RunState.Replay(Journal).Run);
            return t.Effects;
        }

        public void Prepare(int samples, int world, long gen, params long[] unusable)
        {
            Do(new MembershipChanged(new[] { "L1", "L2" }, gen, world));
            for (int shard = 0; shard < Live.Spec.ShardCount; shard++)
            {
                var ids = Enumerable.Range(0, samples).Select(i => (long)i).Where(i => i % Live.Spec.ShardCount == shard).ToArray();
                var bad = ids.Where(unusable.Contains).ToArray();
                Do(new ShardsReported(new[] { shard }, ids, ids.Except(bad).ToArray(), bad.Select(i => $"entry {i}: no audio").ToArray()));
            }
        }

        public IReadOnlyList<RunEffect> ReportAll(double loss = 1.0)
        {
            var fx = new List<RunEffect>();
            var f = Live.InFlight!;
            for (int r = 0; r < Live.World; r++) fx.AddRange(Do(new StepReported(Live.Generation, f.GlobalStep, r, new[] { 1.0, loss + r }, 5)));
            return fx;
        }

        /// <summary>Drives the run to its end the way workers would answer.</summary>
        public void Finish()
        {
            for (int guard = 0; guard < 1000 && !Live.IsTerminal; guard++)
            {
                if (Live.Phase == RunPhase.Validating) Do(new ValidationFinished(Live.Cursor.GlobalStep, 2.0 - guard * 0.01));
                else if (Live.Phase == RunPhase.Checkpointing) Do(new CheckpointFinished(Live.Cursor.GlobalStep));
                else ReportAll(1.0 + guard);
            }
            Assert.Equal(RunPhase.Completed, Live.Phase);
        }
    }

    [Fact]
    public void Replaying_the_journal_gives_the_live_state_after_every_command_of_a_whole_run()
    {
        var j = new Journalled(Spec(save: 2, val: 3, valFraction: 0.25));
        j.Prepare(40, world: 2, gen: 1);
        j.Do(new ValidationFinished(0, 3.0));              // the baseline
        j.ReportAll();
        j.Do(new CheckpointRequested("mine"));
        j.Do(new ValidationRequested());
        j.Do(new StepReported(1, 1, 0, new[] { 1.0, 1.0 }, 5));
        j.Do(new MembershipChanged(new[] { "L1" }, 2, 1));  // a worker and a loader gone mid-step: the step is run again
        Assert.Equal(RunPhase.Validating, j.Live.Phase);     // after the requested validation
        j.Do(new ValidationFinished(1, 2.5));
        Assert.Equal(1, j.Live.InFlight!.GlobalStep);
        j.ReportAll();
        Assert.Equal(RunPhase.Checkpointing, j.Live.Phase);  // the requested checkpoint
        j.Do(new CheckpointFinished(j.Live.Cursor.GlobalStep));
        j.Do(new MembershipChanged(new[] { "L1", "L2" }, 3, 2));
        j.Finish();

        Assert.Equal(j.Live.Plan!.TotalSteps, j.Live.Cursor.Ledger.Count);
        Assert.Contains(j.Journal, e => e is RunEvents.CheckpointStarted { Tag: "mine" });
        Assert.Contains(j.Journal, e => e is RunEvents.ValidationStarted { Final: true });
        Assert.Single(j.Journal.OfType<RunEvents.Ended>());
        // every commit is journalled once, in order, with the totals the workers got
        var commits = j.Effects.OfType<StepCommittedEffect>().ToList();
        Assert.Equal(commits.Select(c => c.Record.GlobalStep), j.Journal.OfType<RunEvents.StepCommitted>().Select(e => e.Record.GlobalStep));
        Assert.Equal(commits.Select(c => c.Totals), j.Journal.OfType<RunEvents.StepCommitted>().Select(e => e.Totals));
    }

    [Fact]
    public void A_failed_or_stopped_run_replays_as_ended()
    {
        var j = new Journalled(Spec());
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll();
        j.Do(new StopRequested(Checkpoint: true));
        Assert.Equal(RunPhase.Stopped, RunState.Replay(j.Journal).Recovered().Phase);
        Assert.IsType<CommandRejected>(Assert.Single(RunMachine.Handle(RunState.Replay(j.Journal), new ValidationRequested()).Effects));
    }

    [Fact]
    public void A_recovered_run_waits_for_its_group_then_resends_the_last_commit_and_runs_the_uncommitted_step_again()
    {
        var j = new Journalled(Spec());
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll(1.0);
        j.ReportAll(2.0);
        var lastCommit = j.Effects.OfType<StepCommittedEffect>().Last();
        j.Do(new StepReported(1, 2, 0, new[] { 1.0, 1.0 }, 5)); // step 2 in flight: one rank reported, then the coordinator dies
        var inFlight = j.Live.InFlight!;

        var r = RunState.Replay(j.Journal).Recovered();
        Assert.True(r.Resuming);
        Assert.Null(r.InFlight);
        Assert.Equal(2, r.Cursor.GlobalStep);
        var (r1, fx) = RunMachine.Handle(r, new MembershipChanged(new[] { "L1", "L2" }, 9, 1)); // one worker re-registered so far
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Single(fx.OfType<AssignShardsEffect>()); // shards are handed out again
        Assert.True(r1.Resuming);
        (r1, fx) = RunMachine.Handle(r1, new MembershipChanged(new[] { "L1", "L2" }, 10, 2));
        var resend = Assert.Single(fx.OfType<ResendCommitEffect>());
        Assert.Equal(lastCommit.Record.GlobalStep, resend.GlobalStep);
        Assert.Equal(lastCommit.Totals, resend.Totals);
        var again = Assert.Single(fx.OfType<StartStepEffect>());
        Assert.True(fx.ToList().IndexOf(resend) < fx.ToList().IndexOf(again), "workers must hear the commit before the next step");
        Assert.Equal(inFlight.GlobalStep, again.GlobalStep);
        Assert.Equal(10, again.Generation);
        Assert.Equal(inFlight.MicroBatches.SelectMany(w => w.SelectMany(m => m)), again.MicroBatches.SelectMany(w => w.SelectMany(m => m)));

        // the old group's late report is ignored; the new group commits step 2 once and the run completes
        (r1, fx) = RunMachine.Handle(r1, new StepReported(1, 2, 1, new[] { 1.0, 1.0 }, 5));
        Assert.Empty(fx);
        var live = new Journalled(r1, j.Journal);
        live.Finish();
        var ledger = live.Live.Cursor.Ledger;
        Assert.Equal(Enumerable.Range(0, ledger.Count).Select(i => (long)i), ledger.Select(e => e.GlobalStep));
        foreach (var epoch in ledger.Select(e => e.Epoch).Distinct())
            Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), ledger.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
    }

    [Fact]
    public void A_recovered_run_with_fewer_workers_goes_on_when_the_wait_is_over()
    {
        var j = new Journalled(Spec());
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll();
        var (r, fx) = RunMachine.Handle(RunState.Replay(j.Journal).Recovered(), new MembershipChanged(new[] { "L1" }, 5, 1));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r, fx) = RunMachine.Handle(r, new ResumeWaitOver());
        Assert.False(r.Resuming);
        Assert.Equal(1, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
    }

    [Fact]
    public void A_checkpoint_or_validation_in_progress_is_asked_for_again()
    {
        var j = new Journalled(Spec(save: 1));
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll();
        Assert.Equal(RunPhase.Checkpointing, j.Live.Phase);
        var (r, fx) = RunMachine.Handle(RunState.Replay(j.Journal).Recovered(), new MembershipChanged(new[] { "L1" }, 4, 2));
        Assert.Equal(new CheckpointEffect(1, "step-1", false), Assert.Single(fx.OfType<CheckpointEffect>()));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (_, fx) = RunMachine.Handle(r, new CheckpointFinished(1));
        Assert.Equal(1, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);

        var v = new Journalled(Spec(val: 5, valFraction: 0.25));
        v.Prepare(40, world: 2, gen: 1);
        Assert.Equal(RunPhase.Validating, v.Live.Phase); // the baseline
        (r, fx) = RunMachine.Handle(RunState.Replay(v.Journal).Recovered(), new MembershipChanged(new[] { "L1" }, 4, 2));
        Assert.Equal(0, Assert.Single(fx.OfType<ValidateEffect>()).GlobalStep);
        Assert.Empty(fx.OfType<ResendCommitEffect>()); // nothing committed yet
    }

    /// <summary>
    /// A roll-back (no worker holding the committed state came back) is journalled: a later coordinator replays the
    /// run as it was after the checkpoint, with the checkpoint's early-stopping bookkeeping, and commits the undone
    /// steps again without a "committed twice".
    /// </summary>
    [Fact]
    public void A_roll_back_to_a_checkpoint_replays_with_the_checkpoints_bookkeeping()
    {
        var j = new Journalled(Spec(save: 2, val: 1, valFraction: 0.25));
        j.Do(new MembershipChanged(new[] { "L1", "L2" }, 1, 2, new[] { "A", "B" }));
        for (int shard = 0; shard < j.Live.Spec.ShardCount; shard++)
        {
            var ids = Enumerable.Range(0, 40).Select(i => (long)i).Where(i => i % j.Live.Spec.ShardCount == shard).ToArray();
            j.Do(new ShardsReported(new[] { shard }, ids, ids, Array.Empty<string>()));
        }
        j.Do(new ValidationFinished(0, 3.0));
        j.ReportAll();
        j.Do(new ValidationFinished(1, 2.0));
        j.ReportAll();
        Assert.Equal(RunPhase.Checkpointing, j.Live.Phase);
        j.Do(new CheckpointFinished(2, "ck/checkpoint-2"));   // best 2.0, none without improvement
        j.Do(new ValidationFinished(2, 2.5));                  // one without improvement, after the checkpoint
        j.ReportAll();
        Assert.Equal(3, j.Live.Cursor.GlobalStep);

        var taken = new Journalled(RunState.Replay(j.Journal).Recovered(), j.Journal);
        taken.Do(new MembershipChanged(new[] { "L1" }, 9, 2, new[] { "C", "D" }));
        var restore = Assert.Single(taken.Do(new ResumeWaitOver()).OfType<RestoreEffect>());
        Assert.Equal((2L, "ck/checkpoint-2"), (restore.GlobalStep, restore.Path));
        Assert.Equal(2.0, taken.Live.BestValidationLoss);
        Assert.Equal(0, taken.Live.ValidationsWithoutImprovement);
        Assert.Single(taken.Journal.OfType<RunEvents.RolledBack>());
        Assert.Empty(taken.Do(new WorkerInstalled("C", 2)).OfType<ValidateEffect>());
        // step 2 was validated after its checkpoint was written: validated again, then step 2 runs again and commits once
        Assert.Equal(2, Assert.Single(taken.Do(new WorkerInstalled("D", 2)).OfType<ValidateEffect>()).GlobalStep);
        taken.Do(new ValidationFinished(2, 2.5));
        Assert.Equal(1, taken.Live.ValidationsWithoutImprovement);
        taken.Finish();
        var ledger = taken.Live.Cursor.Ledger;
        Assert.Equal(Enumerable.Range(0, ledger.Count).Select(i => (long)i), ledger.Select(e => e.GlobalStep));
        Assert.Equal(RunState.Replay(taken.Journal).Run, taken.Live.Run);
    }

    [Fact]
    public void A_run_lost_while_preparing_prepares_again()
    {
        var j = new Journalled(Spec());
        j.Do(new MembershipChanged(new[] { "L1" }, 1, 2));
        Assert.Equal(RunPhase.Preparing, j.Live.Phase);
        var (r, fx) = RunMachine.Handle(RunState.Replay(j.Journal).Recovered(), new MembershipChanged(new[] { "L1", "L2" }, 3, 2));
        Assert.Equal(RunPhase.Preparing, r.Phase);
        Assert.Equal(4, Assert.Single(fx.OfType<AssignShardsEffect>()).Table.Owner.Count);
    }

    [Fact]
    public void Early_stopping_replays_with_its_bookkeeping_and_a_recovered_early_stopped_run_only_writes_its_final_checkpoint()
    {
        var j = new Journalled(Spec(val: 1, valFraction: 0.25, epochs: 4, patience: 2));
        j.Prepare(40, world: 2, gen: 1);
        j.Do(new ValidationFinished(0, 3.0)); // the baseline: best
        j.ReportAll();
        j.Do(new ValidationFinished(1, 2.0)); // new best
        j.ReportAll();
        j.Do(new ValidationFinished(2, 2.5)); // one without improvement
        var replayed = RunState.Replay(j.Journal);
        Assert.Equal(2.0, replayed.BestValidationLoss);
        Assert.Equal(1, replayed.ValidationsWithoutImprovement);
        Assert.False(replayed.EarlyStopped);
        j.ReportAll();
        j.Do(new ValidationFinished(3, 2.1)); // two: the run stops early
        Assert.True(j.Live.EarlyStopped);
        Assert.Equal(RunPhase.Checkpointing, j.Live.Phase);
        Assert.Equal(new RunStage.Finishing(new RunStage.Checkpointing("final"), EarlyStopped: true), j.Live.Run.Stage);

        // the coordinator dies while the final checkpoint is written: its successor asks for it again, trains nothing
        var r = RunState.Replay(j.Journal).Recovered();
        Assert.True(r.EarlyStopped);
        var (r1, fx) = RunMachine.Handle(r, new MembershipChanged(new[] { "L1" }, 7, 2));
        Assert.Equal(new CheckpointEffect(3, "final", true), Assert.Single(fx.OfType<CheckpointEffect>()));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r1, _) = RunMachine.Handle(r1, new CheckpointFinished(3));
        Assert.Equal(RunPhase.Completed, r1.Phase);
        Assert.Contains("early stop", r1.Detail);

        // the journal ended just after the stopping validation (no checkpoint started yet): still no further step
        var upToStop = j.Journal.TakeWhile(e => e is not RunEvents.CheckpointStarted { Final: true }).ToList();
        var r2 = RunState.Replay(upToStop).Recovered();
        Assert.True(r2.EarlyStopped);
        (_, fx) = RunMachine.Handle(r2, new MembershipChanged(new[] { "L1" }, 7, 2));
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Single(fx.OfType<CheckpointEffect>(), c => c.Final && c.GlobalStep == 3);

        j.Do(new CheckpointFinished(3));
        Assert.Equal(RunPhase.Completed, j.Live.Phase);
        Assert.True(RunState.Replay(j.Journal).EarlyStopped);
        Assert.Equal(new RunStage.Ended(RunPhase.Completed, "completed after 3 steps (early stop)", EarlyStopped: true), RunState.Replay(j.Journal).Run.Stage);
    }

    [Fact]
    public void A_resumed_run_replays_with_its_earlier_steps_and_a_successor_waits_for_the_start_group()
    {
        var spec = Spec(val: 2, valFraction: 0.25, patience: 3) with { StartStep = 3, ResumeBestLoss = 1.5, ResumeValidationsWithoutImprovement = 1 };
        var j = new Journalled(spec);
        j.Prepare(40, world: 2, gen: 1);
        Assert.Equal(3, j.Live.InFlight!.GlobalStep); // no baseline validation on resume
        var replayed = RunState.Replay(j.Journal);
        Assert.Equal(new long[] { 0, 1, 2 }, replayed.Cursor.Ledger.Select(e => e.GlobalStep));
        Assert.All(replayed.Cursor.Ledger, e => Assert.Equal(-1, e.Generation));
        Assert.Equal(1.5, replayed.BestValidationLoss);
        Assert.Equal(1, replayed.ValidationsWithoutImprovement);
        Assert.False(replayed.ValidationWanted);

        // lost before this cluster committed a step: the successor waits for the run's start group, not for "world 0"
        var r = replayed.Recovered();
        Assert.Equal(spec.StartWorkers, r.ResumeWorld);
        var (r1, fx) = RunMachine.Handle(r, new MembershipChanged(new[] { "L1" }, 5, 1));
        Assert.Empty(fx.OfType<StartStepEffect>());
        (r1, fx) = RunMachine.Handle(r1, new MembershipChanged(new[] { "L1" }, 6, 2));
        Assert.Equal(3, Assert.Single(fx.OfType<StartStepEffect>()).GlobalStep);
        Assert.Empty(fx.OfType<ResendCommitEffect>()); // nothing committed by this cluster: there is nothing to resend

        // the checkpoint's bookkeeping carries on: validations at steps 4 and 6 are no better than 1.5, so with the one
        // the checkpoint counted the patience of 3 is used up at step 6
        var live = new Journalled(r1, j.Journal);
        live.Finish();
        Assert.True(live.Live.EarlyStopped);
        Assert.Equal(6, live.Live.Cursor.Ledger.Count);
        Assert.Equal(Enumerable.Range(0, live.Live.Cursor.Ledger.Count).Select(i => (long)i), live.Live.Cursor.Ledger.Select(e => e.GlobalStep));
    }

    [Fact]
    public void The_look_ahead_is_planned_afresh_after_a_fail_over_even_under_an_equal_generation_number()
    {
        var j = new Journalled(Spec());
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll();
        Assert.Equal((1L, 2L), j.Live.PlannedThrough); // step 2 went to the loaders with step 1
        var r = RunState.Replay(j.Journal).Recovered();
        Assert.Equal((-1L, -1L), r.PlannedThrough);
        var (r1, fx) = RunMachine.Handle(r, new MembershipChanged(new[] { "L1", "L2" }, 1, 2));
        var start = Assert.Single(fx.OfType<StartStepEffect>());
        Assert.Equal(1, start.GlobalStep);
        Assert.False(start.AlreadyPlanned); // the old coordinator's look-ahead batches are not counted on
        Assert.NotNull(start.Next);
        var live = new Journalled(r1, j.Journal);
        var next = Assert.Single(live.ReportAll().OfType<StartStepEffect>());
        Assert.True(next.AlreadyPlanned); // from here the new coordinator's own look-ahead is used
    }

    [Fact]
    public void Validation_ids_and_the_entries_left_out_replay_into_the_ledger()
    {
        var j = new Journalled(Spec(valFraction: 0.25));
        j.Prepare(40, world: 2, gen: 1, unusable: new long[] { 3, 17, 22 });
        var replayed = RunState.Replay(j.Journal);
        Assert.Equal(3, replayed.Problems.Length);
        Assert.Equal(j.Live.Problems, replayed.Problems);
        Assert.Contains(replayed.Problems, p => p.Contains("entry 17"));
        Assert.Equal(j.Live.ValidationIds, replayed.ValidationIds);
        Assert.NotEmpty(replayed.ValidationIds);
        Assert.DoesNotContain(17L, replayed.Plan!.Ids);
        Assert.DoesNotContain(17L, replayed.ValidationIds);
    }

    [Fact]
    public void A_checkpoint_or_validation_whose_worker_left_is_asked_of_the_new_group_and_journalled_again()
    {
        var j = new Journalled(Spec(save: 1));
        j.Prepare(40, world: 2, gen: 1);
        j.ReportAll();
        Assert.Equal(RunPhase.Checkpointing, j.Live.Phase);
        var fx = j.Do(new MembershipChanged(new[] { "L1", "L2" }, 2, 1)); // the writer was killed mid-write
        Assert.Equal(new CheckpointEffect(1, "step-1", false), Assert.Single(fx.OfType<CheckpointEffect>()));
        Assert.Empty(fx.OfType<StartStepEffect>());
        j.Do(new CheckpointFinished(1));
        Assert.Equal(1, j.Live.InFlight!.GlobalStep);
        Assert.Empty(j.Do(new MembershipChanged(new[] { "L1", "L2" }, 3, 1)).OfType<CheckpointEffect>()); // nothing pending now

        var v = new Journalled(Spec(val: 5, valFraction: 0.25));
        v.Prepare(40, world: 2, gen: 1);
        Assert.Equal(RunPhase.Validating, v.Live.Phase);
        Assert.Equal(0, Assert.Single(v.Do(new MembershipChanged(new[] { "L1" }, 2, 1)).OfType<ValidateEffect>()).GlobalStep);
        Assert.Empty(v.Do(new MembershipChanged(new[] { "L1" }, 3, 0)).OfType<ValidateEffect>()); // nobody to ask
        Assert.Single(v.Do(new MembershipChanged(new[] { "L1" }, 4, 2)).OfType<ValidateEffect>());
        v.Finish();
    }
}
