namespace HiggsCluster.Training.Engine;

public enum ScheduleKind { Cosine, Linear, Constant }

/// <summary>
/// The learning-rate multiplier of optimizer step s (0-based), with transformers' semantics: linear warmup s/warmup, then
/// <c>get_cosine_schedule_with_warmup</c> (half a cosine down to 0 at <see cref="TotalSteps"/>),
/// <c>get_linear_schedule_with_warmup</c> or <c>get_constant_schedule_with_warmup</c>. HF's LambdaLR sets lr(0) at
/// construction and advances once per optimizer step, so step s trains with base_lr · Factor(s).
/// A pure function of the step: the checkpoint only needs the step to restore it.
/// </summary>
public sealed record LrSchedule(ScheduleKind Kind, int WarmupSteps, int TotalSteps)
{
    public double Factor(long step)
    {
        if (step < WarmupSteps) return step / (double)Math.Max(1, WarmupSteps);
        double progress = (step - WarmupSteps) / (double)Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            ScheduleKind.Constant => 1.0,
            ScheduleKind.Linear => Math.Max(0.0, (TotalSteps - step) / (double)Math.Max(1, TotalSteps - WarmupSteps)),
            _ => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress))),
        };
    }
}
