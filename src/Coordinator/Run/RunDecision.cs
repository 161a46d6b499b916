using System.Collections.Immutable;
using System.Globalization;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using HiggsCluster.Planning;
using static HiggsCluster.Coordinator.Run.ViewEvents;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// One <see cref="RunMachine.Decide"/> call: each <see cref="Emit"/> records an event and evolves the local state at
/// once, so a later decision in the same call (report → commit → checkpoint | validate | next step) reads the state the
/// earlier events made, exactly as the fold of those events gives it.
/// </summary>
internal sealed partial class RunDecision(RunState state)
{
    private readonly List<IRunEvent> _events = new();
    private RunState S { get; set; } = state;
    public IReadOnlyList<IRunEvent> Events => _events;

    private RunDurable D => S.Run;
    private RunView V => S.View;
    private RunSpec Spec => S.Spec;
    private string Id => S.Spec.RunId;
    private long Step => S.Cursor.GlobalStep;

    private void Emit(IRunEvent e)
    {
        _events.Add(e);
        S = S.Evolve(e);
    }

    public void Decide(RunCommand cmd)
    {
        if (S.IsTerminal) { Reject($"run {Id} is {S.Phase}: {cmd.GetType().Name} ignored"); return; }
        switch (cmd)
        {
            case MembershipChanged m: OnMembership(m); break;
            case ShardsReported r: OnShards(r); break;
            case StepReported r: OnReport(r); break;
            case CheckpointFinished c:
                if (D.Phase != RunPhase.Checkpointing || c.GlobalStep != Step) { Reject($"no checkpoint of step {c.GlobalStep} was pending"); break; }
                Emit(new RunEvents.CheckpointDone(Id, c.GlobalStep, c.Path));
                AfterCheckpoint();
                break;
            case ValidationFinished v:
                if (D.Phase != RunPhase.Validating || v.GlobalStep != Step) { Reject($"no validation of step {v.GlobalStep} was pending"); break; }
                bool best = D.IsBest(v.Loss);
                Emit(new RunEvents.ValidationDone(Id, v.GlobalStep, v.Loss));
                Emit(new Noted($"validation loss {v.Loss.ToString("G6", CultureInfo.InvariantCulture)}" + (best ? " (best so far)" : "")));
                NextStep();
                break;
            case CheckpointRequested c: Emit(new RunEvents.CheckpointRequested(Id, c.Tag ?? $"step-{Step}")); break;
            case ValidationRequested: Emit(new RunEvents.ValidationRequested(Id)); break;
            case StopRequested st:
                if (st.Checkpoint && Step > 0 && V.World > 0) Emit(new RunEvents.CheckpointStarted(Id, Step, "stop", Final: true));
                End(RunPhase.Stopped, "stopped on request");
                break;
            case FailRun f: End(RunPhase.Failed, f.Reason); break;
            case WorkerProgress p: OnProgress(p.WorkerId, p.AppliedSteps); break;
            case WorkerInstalled i: OnProgress(i.WorkerId, i.GlobalStep); break;
            case HandOverRefused f: OnHandOverFailed(f); break;
            case ResumeWaitOver: WaitOver(); break;
            case HandOverOverdue h:
                if (V.HandOver is { } t && t.Generation == h.Generation && t.GlobalStep == h.GlobalStep && V.Generation == h.Generation) HandOverAgain();
                break;
            default: Reject($"unknown command {cmd.GetType().Name}"); break;
        }
    }

    private void Reject(string reason) => Emit(new Rejected(reason));

    private void End(RunPhase phase, string reason)
    {
        Emit(new RunEvents.Ended(Id, phase, reason));
        Emit(new Idle(reason));
    }

    private void OnMembership(MembershipChanged m)
    {
        var before = V;
        var shards = before.Shards.Rebalance(m.LoadersUp);
        Emit(new LoadersChanged(shards, m.LoadersUp.ToImmutableArray(), Reassigned: shards.Generation != before.Shards.Generation));
        if (S.Phase == RunPhase.Submitted && !shards.Owner.IsEmpty) Emit(new PreparingStarted());
        bool groupChanged = m.WorkerGeneration != before.Generation || m.World != before.World;
        if (groupChanged) Emit(new GroupChanged(m.WorkerGeneration, m.World));
        // a worker may have missed the last commit when the coordinator that sent it died: every group hears it again
        if (groupChanged && m.World > 0 && D.LastTotals.Length > 0 && !S.Cursor.Ledger.IsEmpty)
            Emit(new CommitResent(S.Cursor.Ledger[^1].GlobalStep, D.LastTotals.ToArray()));
        if (m.Workers is not null)
        {
            var members = m.Workers.ToImmutableArray();
            // before this run's first commit every member holds the same state (the initial adapter, or the checkpoint a
            // resumed run starts from). Leaving the group changes nothing a worker holds: a worker id (one per worker
            // incarnation) that comes back without a commit in between, e.g. after both workers of a loaded machine
            // saw each other unreachable for a moment, still holds the committed state; every commit resets the set
            // to the members that took part, so one that missed a commit is stale from then on
            var synced = Step <= Spec.StartStep && !V.AwaitProgress ? V.Synced.Union(members) : V.Synced;
            Emit(new MembersChanged(members, synced, V.HandOver is { } h && h.Generation == m.WorkerGeneration ? h : null));
        }
        if (groupChanged && V.InFlight is not null) Emit(new StepAbandoned($"step {Step} abandoned: worker group changed"));
        if (groupChanged && V.Restoring is { } restoring && m.Workers is not null)
        {
            // members that joined (or had not loaded it yet) load the checkpoint too: loading it again is harmless
            var missing = V.Members.Where(w => !V.Synced.Contains(w)).ToArray();
            if (missing.Length > 0) Emit(new RestoreAsked(restoring with { Generation = m.WorkerGeneration, Workers = missing, RollBack = false }));
            else if (!V.Members.IsEmpty)
            {
                Emit(new Restored(null)); // the one still loading it left: as when the last member loaded it
                ValidateOrContinue();
                return;
            }
        }
        var gone = before.LoadersUp.Except(m.LoadersUp, StringComparer.Ordinal).ToList();
        if (V.InFlight is { } inFlight && !shards.Owner.IsEmpty && (gone.Count > 0 || before.Shards.Owner.IsEmpty))
            Emit(new BatchesReplanned(new ReplanBatchesEffect(inFlight, gone, Lost(inFlight, gone))));
        if (V.Resuming) { Resume(); return; }
        if (S.Phase == RunPhase.Training && V.InFlight is null) { ValidateOrNextStep(); return; }
        // the worker writing the checkpoint (or validating) may be the one that left, e.g. killed mid-write: the new
        // group's lead does it again (writing the same checkpoint twice is harmless; a late second answer is stale)
        if (groupChanged && m.World > 0 && D.Phase == RunPhase.Checkpointing) CheckpointAgain();
        if (groupChanged && m.World > 0 && D.Phase == RunPhase.Validating) ValidateAgain();
    }

    /// <summary>
    /// The batches of the step in flight and of the step planned ahead that went to a loader now gone, or to none: by
    /// where each was sent, since its shard may have moved to a loader that joined after it went out.
    /// </summary>
    private HashSet<SentBatch> Lost(StartStepEffect inFlight, IReadOnlyCollection<string> gone)
    {
        var lost = new HashSet<SentBatch>();
        void Add(long step, long[][][] cut)
        {
            for (int rank = 0; rank < cut.Length; rank++)
                for (int micro = 0; micro < cut[rank].Length; micro++)
                    if (cut[rank][micro].Length > 0 && (!V.SentTo.TryGetValue(new(step, rank, micro), out var loader) || gone.Contains(loader)))
                        lost.Add(new(step, rank, micro));
        }
        Add(inFlight.GlobalStep, inFlight.MicroBatches);
        if (inFlight.Next is { } next) Add(inFlight.GlobalStep + 1, next);
        return lost;
    }

    private void CheckpointAgain() => Emit(new RunEvents.CheckpointStarted(Id, Step, D.CheckpointTag ?? $"step-{Step}", D.Finishing));

    private void ValidateAgain() => Emit(new RunEvents.ValidationStarted(Id, Step, Final: Step >= S.Plan!.TotalSteps));

    private void OnShards(ShardsReported r)
    {
        // results are facts about the data, whoever computed them: keep them even if the shard has moved since
        foreach (var id in r.ShardIds)
            if (id < 0 || id >= Spec.ShardCount) { Reject($"shard {id} outside 0..{Spec.ShardCount - 1}"); return; }
        Emit(new ShardsRecorded(r));
        if (S.Phase != RunPhase.Preparing || V.Prepared.Count < Spec.ShardCount) return;

        var reports = V.Prepared.Values.Distinct().ToList();
        var parsed = reports.SelectMany(x => x.ParsedIds).Distinct().Order().ToList();
        var usable = reports.SelectMany(x => x.UsableIds).ToHashSet();
        var problems = reports.SelectMany(x => x.Problems).Distinct().ToArray();
        List<long> train, val;
        if (Spec.SeparateValidation)
        {
            train = parsed.Where(id => !DataMix.IsSeparateValidationId(id)).ToList();
            val = parsed.Where(DataMix.IsSeparateValidationId).ToList();
        }
        else (train, val) = DataSplit.Split(parsed, Spec.Seed, Spec.ValidationFraction);
        train = train.Where(usable.Contains).ToList();
        val = val.Where(usable.Contains).ToList();
        if (train.Count == 0) { End(RunPhase.Failed, $"no usable training sample ({problems.Length} problems; first: {problems.FirstOrDefault() ?? "none"})"); return; }
        if (Spec.Options.CorpusWeights is { } weights)
            for (int c = 0; c < weights.Count; c++)
                if (!train.Any(id => DataMix.CorpusOf(id) == c))
                {
                    End(RunPhase.Failed, $"data.manifests[{c}]: no usable training sample, so its weight cannot be drawn ({problems.Length} problems; first: {problems.FirstOrDefault() ?? "none"})");
                    return;
                }
        var plan = RunDurable.PlanOf(Spec, train);
        if (Spec.StartStep < 0 || Spec.StartStep > plan.TotalSteps)
        {
            End(RunPhase.Failed, $"resume step {Spec.StartStep} is outside this run's {plan.TotalSteps} steps");
            return;
        }
        Emit(new RunEvents.Planned(Id, train.ToArray(), val.ToArray(), problems));
        Emit(new Noted($"planned: {plan.Ids.Count} training, {val.Count} validation samples"));
        ValidateOrContinue();
    }
}
