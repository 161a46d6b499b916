using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.GpuWorker.HandOvers;
using HiggsCluster.GpuWorker.Run;
using HiggsCluster.GpuWorker.Steps;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Faults;
using Xunit;

namespace HiggsCluster.Tests.Worker;

/// <summary>
/// The worker's run state as a pure machine: registration, a step from batches to the commit, hand-over chunks,
/// restores, and what a stale generation or a repeated message must not change. <see cref="Drive"/> answers the engine
/// calls the way the actor does (a micro-step returns its loss, the optimizer steps, a load succeeds), so a test reads
/// as the sequence of cluster messages a worker sees.
/// </summary>
public sealed class WorkerRunTests
{
    private const string Me = "me";
    private const string Run = "run-1";
    private static readonly double[] Totals = { 4.0, 2.0 };

    private static AllReduceGroup Group(long generation, params string[] workers) =>
        new(Run, generation, workers.Select((w, i) => new GroupMember(i, w, "127.0.0.1", 7000 + i)).ToArray(), null) { RingKey = new byte[32] };

    private static BatchDelivery Batch(long generation, long step, int rank, int micro) =>
        new(Run, generation, 0, step, rank, micro, new[] { step * 10 + micro }, Array.Empty<NamedTensor>());

    private static Received M(object message) => new(message);

    /// <summary>Feeds inputs as the actor does: engine calls answered at once, everything else collected.</summary>
    private static (WorkerRun State, List<WorkerRunEffect> Effects) Drive(WorkerRun s, params WorkerInput[] inputs)
    {
        var all = new List<WorkerRunEffect>();
        foreach (var first in inputs)
        {
            // the engine's answers are handled before the next message, as in the actor
            var queue = new Queue<WorkerInput>(new[] { first });
            while (queue.TryDequeue(out var input))
            {
                var (next, fx) = s.Handle(input);
                s = next;
                foreach (var e in fx)
                {
                    all.Add(e);
                    WorkerInput? answer = e switch
                    {
                        RunMicro m => new MicroStepDone(m.Batch.Step, m.Batch.Micro, 1.5),
                        RunOptimizer o => new OptimizerDone(o.Step),
                        ImportState i => new StateImported(i.RunId, i.Step),
                        LoadCheckpoint l => new CheckpointLoaded(l.Request.RunId, l.Request.Step, l.Request.Path, 1),
                        _ => null,
                    };
                    if (answer is not null) queue.Enqueue(answer);
                }
            }
        }
        return (s, all);
    }

    private static T[] Of<T>(IEnumerable<WorkerRunEffect> fx) => fx.OfType<T>().ToArray();
    private static object[] Told(IEnumerable<WorkerRunEffect> fx) => fx.OfType<ToCoordinator>().Select(t => t.Message).ToArray();

    /// <summary>Rank 0 of generation 1 with two ranks, its communicator formed and one loader known.</summary>
    private static WorkerRun Ready(long generation = 1)
    {
        var (s, _) = Drive(WorkerRun.Start(Me, credits: 2), M(Group(generation, Me, "peer")),
            new CommunicatorReady(generation, null), new LoaderUp("akka://c@l1:1"));
        return s;
    }

    /// <summary>Step <paramref name="step"/> with <paramref name="micros"/> micro-batches reduced and reported, not committed.</summary>
    private static (WorkerRun, List<WorkerRunEffect>) Reported(WorkerRun s, long step, int micros = 2, long generation = 1)
    {
        var inputs = new List<WorkerInput> { M(new StartStep(Run, generation, 0, step, micros)) };
        for (int m = micros - 1; m >= 0; m--) inputs.Add(M(Batch(generation, step, 0, m)));
        inputs.Add(new ReduceFinished(generation, step, null));
        return Drive(s, inputs.ToArray());
    }

    [Fact]
    public void Registration_reports_the_run_and_the_committed_steps_this_worker_holds()
    {
        var (fresh, fx) = Drive(WorkerRun.Start(Me, 2), new RegisterTick());
        Assert.Equal(new Register(null, 0), Assert.Single(fx));

        var (s, _) = Reported(Ready(), 0);
        (s, _) = Drive(s, M(new StepCommitted(Run, 0, Totals)));
        (_, fx) = Drive(s, new RegisterTick());
        Assert.Equal(new Register(Run, 1), Assert.Single(fx));

        // another run's group: nothing of the first run counts
        (s, _) = Drive(s, M(Group(1, Me) with { RunId = "run-2" }), new RegisterTick());
        Assert.Equal(("run-2", 0L), (s.RunId, s.Applied));
        Assert.Equal(0, fresh.Applied);
    }

    [Fact]
    public void A_step_runs_from_batches_in_micro_order_to_the_report_and_its_commit_is_applied_once()
    {
        var s = Ready();
        var (_, demand) = Drive(WorkerRun.Start(Me, 2), M(Group(1, Me, "peer")), new LoaderUp("akka://c@l1:1"));
        Assert.Equal(new ToLoader("akka://c@l1:1", new BatchDemand(Run, 1, 0, 2)), Assert.Single(Of<ToLoader>(demand)));

        var (after, fx) = Reported(s, 0);
        // micro 1 arrived first and waited for micro 0; each batch's credit went back on receipt
        Assert.Equal(new long[] { 0, 1 }, Of<RunMicro>(fx).Select(m => (long)m.Batch.Micro));
        Assert.All(Of<RunMicro>(fx), m => Assert.Equal(2, m.World));
        Assert.Equal(2, Of<ToSender>(fx).Count(t => t.Message is BatchAck));
        Assert.Equal(2, Of<ToSender>(fx).Count(t => t.Message is BatchDemand { Credits: 1 }));
        Assert.Equal(new StartAllReduce(1, 0), Assert.Single(Of<StartAllReduce>(fx)));
        Assert.Equal(new InjectFault(FaultPoint.AfterAllReduce, 0), Assert.Single(Of<InjectFault>(fx)));
        Assert.Equal(new ReportStepDone(Run, 1, 0, 0), Assert.Single(Of<ReportStepDone>(fx)));
        Assert.Empty(Of<RunOptimizer>(fx)); // not before the commit
        Assert.Empty(after.Batches);

        (after, fx) = Drive(after, M(new StepCommitted(Run, 0, Totals)));
        Assert.Equal(new RunOptimizer(0, Totals, Lead: true), Assert.Single(Of<RunOptimizer>(fx)));
        Assert.Equal(1, after.Applied);
        Assert.Empty(after.Commits);

        (after, fx) = Drive(after, M(new StepCommitted(Run, 0, Totals)), M(new StepCommitted("other-run", 1, Totals)));
        Assert.Empty(fx); // a commit sent again (coordinator fail-over) is not stepped twice
        Assert.Equal(1, after.Applied);
    }

    [Fact]
    public void A_commit_that_arrives_before_this_rank_reduced_the_step_does_not_step_the_optimizer()
    {
        var (s, fx) = Drive(Ready(), M(new StartStep(Run, 1, 0, 0, 1)), M(new StepCommitted(Run, 0, Totals)));
        Assert.Empty(Of<RunOptimizer>(fx));
        Assert.Equal(0, s.Applied);
        (s, fx) = Drive(s, M(Batch(1, 0, 0, 0)), new ReduceFinished(1, 0, null));
        Assert.Single(Of<ReportStepDone>(fx));
        Assert.Empty(Of<RunOptimizer>(fx)); // only the commit of the reduced step counts
        (s, fx) = Drive(s, M(new StepCommitted(Run, 0, Totals)));
        Assert.Single(Of<RunOptimizer>(fx));
        Assert.Equal(1, s.Applied);
    }

    [Fact]
    public void A_reduced_step_keeps_its_gradients_across_a_group_change_until_the_new_coordinator_resends_the_commit()
    {
        var (s, _) = Reported(Ready(), 0);
        var (again, fx) = Drive(s, M(Group(2, Me, "peer")));
        Assert.Empty(Of<DiscardStepGradients>(fx));
        Assert.Equal(WorkerPhase.AwaitingCommit, again.Step.Phase);
        Assert.Contains(fx, e => e is Communicator { Formation: AbortCommunicator });
        Assert.Contains(fx, e => e is Communicator { Formation: FormRing { Generation: 2 } });
        Assert.False(again.HasCommunicator);
        Assert.Equal(new BatchDemand(Run, 2, 0, 2), Assert.Single(Of<ToLoader>(fx)).Demand); // the new group asks the loaders again

        (again, fx) = Drive(again, M(new StepCommitted(Run, 0, Totals)));
        Assert.Equal(new RunOptimizer(0, Totals, true), Assert.Single(Of<RunOptimizer>(fx)));
        Assert.Equal(1, again.Applied);
    }

    [Fact]
    public void A_stale_generations_group_start_batches_reduce_and_communicator_change_nothing()
    {
        var s = Ready(generation: 2);
        var (same, fx) = Drive(s, M(Group(1, "peer", Me)), M(new StartStep(Run, 1, 0, 0, 1)), new ReduceFinished(1, 0, null));
        Assert.Empty(fx);
        Assert.Equal((2L, 0, WorkerPhase.Idle), (same.Group!.Generation, same.Rank, same.Step.Phase));

        (same, fx) = Drive(same, M(Batch(1, 0, 0, 0)), M(Batch(2, 0, 1, 0)));
        // released at the loader, never kept: one of an old generation, one planned for another rank
        Assert.Equal(2, Of<ToSender>(fx).Count(t => t.Message is BatchAck));
        Assert.DoesNotContain(Of<ToSender>(fx), t => t.Message is BatchDemand);
        Assert.Empty(same.Batches);

        (_, fx) = Drive(same, new CommunicatorReady(1, null));
        Assert.Equal(new TakeCommunicator(false), Assert.Single(fx));
    }

    [Fact]
    public void An_all_reduce_waits_for_the_communicator_of_its_generation()
    {
        var (s, _) = Drive(WorkerRun.Start(Me, 2), M(Group(1, Me)));
        var (waiting, fx) = Drive(s, M(new StartStep(Run, 1, 0, 0, 1)), M(Batch(1, 0, 0, 0)));
        Assert.Empty(Of<StartAllReduce>(fx));
        Assert.True(waiting.ReducePending);
        (waiting, fx) = Drive(waiting, new CommunicatorReady(1, null));
        Assert.Equal(new WorkerRunEffect[] { new TakeCommunicator(true), new StartAllReduce(1, 0) }, fx);
        Assert.False(waiting.ReducePending);
    }

    [Fact]
    public void A_broken_all_reduce_or_ring_of_the_current_group_asks_the_coordinator_to_form_it_again()
    {
        var (s, _) = Drive(WorkerRun.Start(Me, 2), M(Group(3, "peer", Me)), new CommunicatorReady(3, null));
        var (reducing, _) = Drive(s, M(new StartStep(Run, 3, 0, 0, 1)), M(Batch(3, 0, 1, 0)));
        Assert.Equal(WorkerPhase.AllReducing, reducing.Step.Phase);

        var (after, fx) = Drive(reducing, new ReduceFinished(3, 0, "ring broken (Connection timed out)"));
        var broken = Assert.IsType<GroupBroken>(Assert.Single(Told(fx)));
        Assert.Equal((Run, Me, 3L), (broken.RunId, broken.WorkerId, broken.Generation));
        Assert.Contains("Connection timed out", broken.Reason);
        Assert.Equal(WorkerPhase.AllReducing, after.Step.Phase); // the step is dropped when the new group arrives

        var (regrouped, fx2) = Drive(after, M(Group(4, "peer", Me)));
        Assert.Equal(WorkerPhase.Idle, regrouped.Step.Phase);
        Assert.Contains(fx2, e => e is DiscardStepGradients);

        // a ring that could not form is reported the same way; one of a past generation is not
        (_, fx) = Drive(regrouped, new CommunicatorReady(4, "rank 1 did not connect"));
        Assert.Equal(4, Assert.IsType<GroupBroken>(Assert.Single(Told(fx))).Generation);
        (_, fx) = Drive(regrouped, new ReduceFinished(3, 0, "ring broken"));
        Assert.Empty(Told(fx));
    }

    private static NamedTensor[] State => new[] { new NamedTensor("adapter", TensorData.FromFloats(new float[] { 1, 2, 3 }, 3)) };

    [Fact]
    public void Hand_over_chunks_that_arrive_before_the_run_is_known_are_installed_once_it_is_and_only_once()
    {
        var chunks = HandOverChunks.Split(Run, 3, generation: 2, State);
        var (s, fx) = Drive(WorkerRun.Start(Me, 2), chunks.Select(c => (WorkerInput)M(c)).ToArray());
        Assert.Empty(fx);
        Assert.Equal(chunks.Count, s.Early.Count);

        (s, fx) = Drive(s, M(Group(2, "peer", Me)));
        var import = Assert.Single(Of<ImportState>(fx));
        Assert.Equal(State.Select(t => t.Tensor.Data), import.State.Select(t => t.Tensor.Data));
        Assert.Equal(new StateInstalled(Run, Me, 3), Assert.Single(Told(fx)));
        Assert.Equal((3L, 1), (s.Applied, s.Rank));
        Assert.Empty(s.Early);

        (s, fx) = Drive(s, chunks.Select(c => (WorkerInput)M(c)).ToArray());
        Assert.Empty(fx); // sent again by a peer: installed already
        Assert.Equal(3, s.Applied);
    }

    [Fact]
    public void A_hand_over_that_cannot_be_used_fails_the_worker_and_a_load_error_is_reported()
    {
        var s = Ready();
        var (_, fx) = Drive(s, M(new TensorSnapshot(Run, 5, State)));
        var failed = Assert.IsType<WorkerFailed>(Assert.Single(Told(fx)));
        Assert.Contains("handed-over state unusable", failed.Reason);
        Assert.Contains("higgs.chunk", failed.Reason);

        (s, _) = Drive(s, M(new StartStep(Run, 1, 0, 0, 2)));
        (_, fx) = Drive(s, HandOverChunks.Split(Run, 2, 1, State).Select(c => (WorkerInput)M(c)).ToArray());
        Assert.Contains("while step 0 is MicroSteps", Assert.IsType<WorkerFailed>(Assert.Single(Told(fx))).Reason);

        (_, fx) = Drive(s, new LoadFailed(Run, 4, "checkpoint x could not be restored: gone"));
        Assert.Equal(new WorkerFailed(Run, Me, 4, "checkpoint x could not be restored: gone"), Assert.Single(Told(fx)));
    }

    [Fact]
    public void A_restore_abandons_the_step_in_progress_and_the_restored_state_is_what_a_hand_over_sends()
    {
        var (s, _) = Drive(Ready(), M(new StartStep(Run, 1, 0, 7, 2)), M(Batch(1, 7, 0, 1)), M(new StepCommitted(Run, 9, Totals)));
        Assert.Single(s.Batches);
        var (restored, fx) = Drive(s, M(new RestoreCheckpoint(Run, 1, 4, "/ck/step-4", CutMetricsLog: false)));
        Assert.IsType<DiscardStepGradients>(fx[0]);
        Assert.Equal(new StateInstalled(Run, Me, 4), Assert.Single(Told(fx)));
        Assert.Equal((4L, WorkerPhase.Idle), (restored.Applied, restored.Step.Phase));
        Assert.Empty(restored.Batches);
        Assert.Empty(restored.Commits);

        var ask = new HandOverTo(Run, 2, 4, new[] { "akka://c@w2:1/user/gpu-worker" });
        (_, fx) = Drive(restored, M(ask));
        Assert.Equal(new SendState(ask), Assert.Single(fx));
        (_, fx) = Drive(restored, M(ask with { Step = 5 }));
        Assert.Contains("holds 4 steps", Assert.IsType<HandOverNotSent>(Assert.Single(Told(fx))).Reason);
        (_, fx) = Drive(s, M(ask));
        Assert.IsType<HandOverNotSent>(Assert.Single(Told(fx))); // mid-step: nothing to hand over

        (_, fx) = Drive(restored, M(new RestoreCheckpoint("other-run", 1, 2, null, false)));
        Assert.Empty(fx);
    }

    [Fact]
    public void Loaders_are_asked_once_per_group_and_a_loader_that_left_is_asked_again_when_it_returns()
    {
        var s = Ready();
        var (_, fx) = Drive(s, new LoaderUp("akka://c@l1:1"));
        Assert.Empty(fx);
        (s, fx) = Drive(s, new LoaderGone("akka://c@l1:1"), new LoaderUp("akka://c@l1:1"), new LoaderUp("akka://c@l2:1"));
        Assert.Equal(new[] { "akka://c@l1:1", "akka://c@l2:1" }, Of<ToLoader>(fx).Select(l => l.Address));

        // not in the group: no rank, no demand
        (_, fx) = Drive(WorkerRun.Start(Me, 2), M(Group(1, "peer")), new LoaderUp("akka://c@l1:1"));
        Assert.Empty(Of<ToLoader>(fx));
    }
}
