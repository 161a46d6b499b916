using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class RunMachineTests
{
    private static RunSpec Spec(long samples = 20, int perStep = 4, int epochs = 1, int save = 0, int val = 0, long maxSteps = 0) =>
        new("r1", "m.jsonl", samples, ShardCount: 4, Epochs: epochs, SamplesPerStep: perStep, MicroBatchSize: 2,
            SaveSteps: save, ValSteps: val, Seed: 9, MaxSteps: maxSteps);

    private static (RunState, IReadOnlyList<RunEffect>) Up(RunState s, int world, long gen = 1) =>
        s.Handle(new MembershipChanged(new[] { "L1", "L2" }, gen, world));

    /// <summary>Every rank reports the step in flight with the same checksum.</summary>
    private static (RunState, IReadOnlyList<RunEffect>) ReportAll(RunState s, ulong checksum = 5)
    {
        var fx = new List<RunEffect>();
        var f = s.InFlight!;
        for (int r = 0; r < s.World; r++)
        {
            var (s2, e) = s.Handle(new StepReported(s.Generation, f.GlobalStep, r, 1.0 + r, checksum));
            s = s2; fx.AddRange(e);
        }
        return (s, fx);
    }

    [Fact]
    public void Submitted_run_prepares_then_trains_every_step_and_completes()
    {
        var s = RunState.Submit(Spec());
        Assert.Equal(RunPhase.Submitted, s.Phase);
        var (s1, fx) = s.Handle(new MembershipChanged(new[] { "L1" }, 0, 0));
        Assert.Equal(RunPhase.Preparing, s1.Phase);
        Assert.Single(fx.OfType<AssignShardsEffect>());
        Assert.Empty(fx.OfType<StartStepEffect>()); // no workers yet
        (s1, fx) = Up(s1, 2);
        Assert.Equal(RunPhase.Training, s1.Phase);
        var commits = new List<StepCommittedEffect>();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(i, s1.InFlight!.GlobalStep);
            var (s2, e) = ReportAll(s1);
            commits.AddRange(e.OfType<StepCommittedEffect>());
            s1 = s2; fx = e;
        }
        Assert.Equal(RunPhase.Completed, s1.Phase);
        Assert.Contains(fx, e => e is CheckpointEffect { Tag: "final" });
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), commits.SelectMany(c => c.Record.SampleIds).Order());
        Assert.Equal(1.5, commits[0].MeanLoss);
        Assert.IsType<CommandRejected>(Assert.Single(s1.Handle(new ValidationRequested()).Effects));
    }

    [Fact]
    public void A_step_commits_only_when_every_rank_reported_and_duplicates_or_stale_reports_do_nothing()
    {
        var (s, _) = Up(RunState.Submit(Spec()), 3, gen: 7);
        var (s1, fx) = s.Handle(new StepReported(7, 0, 0, 1, 5));
        (s1, fx) = s1.Handle(new StepReported(7, 0, 0, 1, 5)); // duplicate
        Assert.Empty(fx);
        (s1, fx) = s1.Handle(new StepReported(6, 0, 1, 1, 5)); // old generation
        Assert.Empty(fx);
        (s1, fx) = s1.Handle(new StepReported(7, 0, 1, 1, 5));
        Assert.Empty(fx.OfType<StepCommittedEffect>());
        (s1, fx) = s1.Handle(new StepReported(7, 0, 2, 1, 5));
        Assert.Single(fx.OfType<StepCommittedEffect>());
        Assert.Equal(1, s1.Cursor.GlobalStep);
    }

    [Fact]
    public void Membership_change_abandons_the_step_and_replans_the_same_samples_for_the_new_group()
    {
        var (s, fx) = Up(RunState.Submit(Spec()), 2, gen: 1);
        var first = fx.OfType<StartStepEffect>().Single();
        (s, _) = s.Handle(new StepReported(1, 0, 0, 1, 5));
        (s, fx) = Up(s, 3, gen: 2);
        var again = fx.OfType<StartStepEffect>().Single();
        Assert.Equal(0, again.GlobalStep);
        Assert.Equal(3, again.MicroBatches.Length);
        Assert.Equal(first.MicroBatches.SelectMany(r => r.SelectMany(m => m)), again.MicroBatches.SelectMany(r => r.SelectMany(m => m)));
        (s, fx) = s.Handle(new StepReported(1, 0, 1, 1, 5)); // the old group's late report
        Assert.Empty(fx);
        Assert.Empty(s.Reports);
        (s, fx) = ReportAll(s);
        Assert.Equal(2, fx.OfType<StepCommittedEffect>().Single().Record.Generation);
    }

    [Fact]
    public void Workers_leaving_pauses_training_until_a_group_returns()
    {
        var (s, _) = Up(RunState.Submit(Spec()), 2);
        var (s1, fx) = Up(s, 0, gen: 2);
        Assert.Null(s1.InFlight);
        Assert.Empty(fx.OfType<StartStepEffect>());
        (s1, fx) = Up(s1, 1, gen: 3);
        Assert.Equal(0, fx.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void The_first_step_waits_for_the_start_workers_later_steps_go_on_with_fewer()
    {
        var (s, fx) = Up(RunState.Submit(Spec() with { StartWorkers = 2 }), 1);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.Contains("1 of 2", s.Detail);
        (s, fx) = Up(s, 2, gen: 2);
        Assert.Single(fx.OfType<StartStepEffect>());
        (s, _) = ReportAll(s);
        (s, fx) = Up(s, 1, gen: 3);
        Assert.Equal(1, fx.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void Diverged_checksums_fail_the_run_naming_the_ranks()
    {
        var (s, _) = Up(RunState.Submit(Spec()), 2);
        (s, _) = s.Handle(new StepReported(1, 0, 0, 1, 5));
        var (s1, fx) = s.Handle(new StepReported(1, 0, 1, 1, 6));
        Assert.Equal(RunPhase.Failed, s1.Phase);
        var ended = fx.OfType<RunEndedEffect>().Single();
        Assert.Contains("rank 1", ended.Reason);
        Assert.Empty(fx.OfType<StepCommittedEffect>());
    }

    [Fact]
    public void Save_and_val_steps_interleave_checkpoint_then_validation_before_the_next_step()
    {
        var (s, _) = Up(RunState.Submit(Spec(samples: 40, save: 2, val: 2)), 1);
        (s, var fx) = ReportAll(s);
        Assert.Single(fx.OfType<StartStepEffect>()); // step 1 → no save/val
        (s, fx) = ReportAll(s);
        Assert.Equal(RunPhase.Checkpointing, s.Phase);
        Assert.Equal(2, fx.OfType<CheckpointEffect>().Single().GlobalStep);
        Assert.Empty(fx.OfType<StartStepEffect>());
        Assert.IsType<CommandRejected>(Assert.Single(s.Handle(new CheckpointFinished(1)).Effects));
        (s, fx) = s.Handle(new CheckpointFinished(2));
        Assert.Equal(RunPhase.Validating, s.Phase);
        Assert.Single(fx.OfType<ValidateEffect>());
        (s, fx) = s.Handle(new ValidationFinished(2, 0.5));
        Assert.Equal(RunPhase.Training, s.Phase);
        Assert.Equal(2, fx.OfType<StartStepEffect>().Single().GlobalStep);
    }

    [Fact]
    public void On_request_checkpoint_and_stop()
    {
        var (s, _) = Up(RunState.Submit(Spec(samples: 40)), 1);
        (s, _) = s.Handle(new CheckpointRequested("mine"));
        (s, var fx) = ReportAll(s);
        Assert.Equal("mine", fx.OfType<CheckpointEffect>().Single().Tag);
        (s, fx) = s.Handle(new StopRequested(Checkpoint: true));
        Assert.Equal(RunPhase.Stopped, s.Phase);
        Assert.Contains(fx, e => e is CheckpointEffect { Tag: "stop", GlobalStep: 1 });
    }

    [Fact]
    public void Max_steps_ends_the_run_early()
    {
        var (s, _) = Up(RunState.Submit(Spec(samples: 40, epochs: 3, maxSteps: 2)), 1);
        (s, _) = ReportAll(s);
        (s, var fx) = ReportAll(s);
        Assert.Equal(RunPhase.Completed, s.Phase);
        Assert.Equal(2, s.Cursor.GlobalStep);
    }

    [Fact]
    public void Bad_specs_are_refused()
    {
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec(samples: 0)));
        Assert.Throws<ArgumentException>(() => RunState.Submit(Spec(epochs: 0)));
    }
}
