using HiggsCluster.Messages;
using static HiggsCluster.Coordinator.Run.ViewEvents;

namespace HiggsCluster.Coordinator.Run;

/// <summary>Steps, commits, checkpoints and validations: the training loop's decisions.</summary>
internal sealed partial class RunDecision
{
    /// <summary>A requested validation first, else the next step (a validation due by val_steps waits for its commit).</summary>
    private void ValidateOrNextStep()
    {
        if (D.ValidationWanted) ValidateOrContinue();
        else NextStep();
    }

    /// <summary>Starts the cursor's step when workers and loaders are there; otherwise waits in the current phase.</summary>
    private void NextStep()
    {
        var plan = S.Plan!;
        if (V.Restoring is { } r) { Emit(new Idle($"waiting for the workers to load the checkpoint of step {r.GlobalStep}")); return; }
        // finishing (early stop, or waiting for a worker to write the final checkpoint) never starts another step
        if (S.Cursor.Finished(plan) || D.Finishing) { Finish(); return; }
        int needed = Step <= Spec.StartStep ? Spec.StartWorkers : 1;
        if (V.World < needed || V.LoadersUp.IsEmpty)
        {
            Emit(new Idle(V.World < needed ? $"waiting for workers ({V.World} of {needed})" : "waiting for loaders"));
            return;
        }
        if (HandOverFirst()) return;
        long step = Step;
        int world = V.World;
        long[][][] Cut(long s) => Enumerable.Range(0, world).Select(w => plan.WorkerMicroBatches(s, w, world).ToArray()).ToArray();
        bool planned = V.PlannedThrough.Generation == V.Generation && V.PlannedThrough.Step >= step;
        bool lookAhead = step + 1 < plan.TotalSteps;
        var start = new StartStepEffect(V.Generation, plan.EpochOf(step), step, Cut(step), planned,
            lookAhead ? Cut(step + 1) : null, lookAhead ? plan.EpochOf(step + 1) : 0);
        Emit(new StepStarted(start, (V.Generation, lookAhead ? step + 1 : step), $"training step {step + 1} of {plan.TotalSteps}"));
    }

    /// <summary>The run ends with a final validation (when there is a validation set) and a final checkpoint.</summary>
    private void Finish()
    {
        if (D.ValidationIds.Length > 0 && !D.Finishing && D.Phase != RunPhase.Validating)
        {
            if (V.World > 0 && NoLead()) return;
            Emit(new RunEvents.ValidationStarted(Id, Step, Final: true));
            Emit(new Idle($"final validation at step {Step}"));
            return;
        }
        // no validation set, so nothing but the final checkpoint is left, whenever a worker is there to write it
        if (V.World == 0) { Emit(new Noted("waiting for a worker to write the final checkpoint")); return; }
        if (NoLead()) return;
        Emit(new RunEvents.CheckpointStarted(Id, Step, "final", Final: true));
        Emit(new Idle($"writing the final checkpoint of step {Step}"));
    }

    private void OnReport(StepReported r)
    {
        // reports of an abandoned group or step are late echoes, not errors
        if (V.InFlight is not { } inFlight || r.Generation != V.Generation || r.GlobalStep != inFlight.GlobalStep) return;
        if (r.Rank < 0 || r.Rank >= V.World) { Reject($"rank {r.Rank} outside the group of {V.World}"); return; }
        if (V.Reports.ContainsKey(r.Rank)) return;
        Emit(new Reported(r.Rank, r.Stats, r.LoraChecksum));
        if (V.Reports.Count < V.World) return;

        var reports = V.Reports;
        if (reports.Values.Select(v => v.Checksum).Distinct().Count() > 1)
        {
            End(RunPhase.Failed, $"LoRA parameters diverged at step {inFlight.GlobalStep}: checksums " +
                string.Join(", ", reports.Select(kv => $"rank {kv.Key}={kv.Value.Checksum:x16}")));
            return;
        }
        double[] totals;
        try { totals = StepStats.Sum(reports.Values.Select(v => v.Stats)); }
        catch (ArgumentException e) { End(RunPhase.Failed, $"step {inFlight.GlobalStep}: {e.Message}"); return; }
        var ids = inFlight.MicroBatches.SelectMany(w => w.SelectMany(m => m)).ToArray();
        var record = S.Cursor.Commit(S.Plan!, inFlight.GlobalStep, V.Generation, V.World, ids).Ledger[^1];
        Emit(new RunEvents.StepCommitted(Id, record, totals));
        Emit(new CommitApplied());
        long g = Step;
        if (!S.Cursor.Finished(S.Plan!) && (D.PendingCheckpointTag is not null || (Spec.SaveSteps > 0 && g % Spec.SaveSteps == 0)))
        {
            Emit(new RunEvents.CheckpointStarted(Id, g, D.PendingCheckpointTag ?? $"step-{g}", Final: false));
            Emit(new Noted($"checkpointing step {g}"));
            return;
        }
        ValidateOrContinue();
    }

    private void AfterCheckpoint()
    {
        if (D.Finishing) End(RunPhase.Completed, $"completed after {Step} steps" + (D.EarlyStopped ? " (early stop)" : ""));
        else ValidateOrContinue();
    }

    private void ValidateOrContinue()
    {
        if (V.Restoring is not null) { NextStep(); return; }
        long g = Step;
        bool finished = S.Cursor.Finished(S.Plan!);
        if (!finished && D.ValidationIds.Length > 0 && V.World > 0 && (D.ValidationWanted || (Spec.ValSteps > 0 && g > 0 && g % Spec.ValSteps == 0)))
        {
            if (NoLead()) return;
            Emit(new RunEvents.ValidationStarted(Id, g, Final: false));
            Emit(new Noted($"validating step {g}"));
            return;
        }
        NextStep();
    }

    /// <summary>Members are there but none holds the committed state: nothing in the cluster can continue the run.</summary>
    private bool NoLead()
    {
        if (V.Members.IsEmpty || S.Lead is not null) return false;
        if (V.AwaitProgress) Emit(new Idle($"waiting for a worker holding step {Step} to register"));
        else End(RunPhase.Failed, $"no live worker holds the committed state of step {Step} (every worker that applied it is gone); resume from the last checkpoint");
        return true;
    }
}
