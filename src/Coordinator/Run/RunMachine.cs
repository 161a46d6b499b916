namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// The run as a pure machine: <see cref="Decide"/>(state, command) → events, and one <see cref="Evolve"/>(state, event)
/// → state that the live coordinator and the journal's replay both use. Submitted → Preparing (shards assigned; loaders
/// read and check them) → Training ⇄ Checkpointing/Validating → Completed (after the final checkpoint) | Failed |
/// Stopped. The plan is the shared sample plan over the usable training ids, split into train/validation exactly as the
/// single-process trainer does. A step commits only when every rank of the current worker group reported it with the
/// same LoRA checksum; a membership change abandons the step in flight and plans it again for the new group.
/// </summary>
public static class RunMachine
{
    public static IReadOnlyList<IRunEvent> Decide(RunState state, RunCommand command)
    {
        var decision = new RunDecision(state);
        decision.Decide(command);
        return decision.Events;
    }

    public static RunState Evolve(RunState state, IRunEvent e) => state.Evolve(e);

    /// <summary>The events folded into the state, and what to send out for them (in their order).</summary>
    public static (RunState State, IReadOnlyList<RunEffect> Effects) Fold(RunState state, IEnumerable<IRunEvent> events)
    {
        var effects = new List<RunEffect>();
        foreach (var e in events)
        {
            state = Evolve(state, e);
            if (RunEffects.Of(state, e) is { } fx) effects.Add(fx);
        }
        return (state, effects);
    }

    /// <summary><see cref="Decide"/> then <see cref="Fold"/>: what the coordinator does with one command (before journalling).</summary>
    public static RunTransition Handle(RunState state, RunCommand command)
    {
        var events = Decide(state, command);
        var (next, effects) = Fold(state, events);
        return new RunTransition(next, events, effects);
    }
}

/// <summary>One command's outcome: the new state, the events that led to it (the <see cref="RunEvent"/>s get journalled) and the effects.</summary>
public sealed record RunTransition(RunState State, IReadOnlyList<IRunEvent> Events, IReadOnlyList<RunEffect> Effects)
{
    public IEnumerable<RunEvent> Journalled => Events.OfType<RunEvent>();

    public void Deconstruct(out RunState state, out IReadOnlyList<RunEffect> effects) => (state, effects) = (State, Effects);
}
