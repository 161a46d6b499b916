using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// The learning-rate multiplier of optimizer step s (0-based): linear warmup (s+1)/warmup, then transformers'
/// <c>get_cosine_schedule_with_warmup</c> (half a cosine down to 0 at <see cref="TotalSteps"/>),
/// <c>get_linear_schedule_with_warmup</c> or <c>get_constant_schedule_with_warmup</c>.
/// The warmup is one step ahead of transformers' s/warmup: there (LambdaLR sets lr(0) at construction and advances once
/// per optimizer step) the first step trains at lr 0 and is wasted, its validation equal to the untrained one; here it
/// trains at lr/warmup and the last warmup step reaches the full lr. <see cref="HfWarmup"/> gives transformers' factors
/// back (to match a reference run step for step). After the warmup both agree.
/// A pure function of the step: the checkpoint only needs the step to restore it.
/// </summary>
public sealed record LrSchedule(ScheduleKind Kind, int WarmupSteps, int TotalSteps, bool HfWarmup = false)
{
    public double Factor(long step)
    {
        if (step < WarmupSteps) return (HfWarmup ? step : step + 1) / (double)WarmupSteps;
        double progress = (step - WarmupSteps) / (double)Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            ScheduleKind.Constant => 1.0,
            ScheduleKind.Linear => Math.Max(0.0, (TotalSteps - step) / (double)Math.Max(1, TotalSteps - WarmupSteps)),
            _ => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress))),
        };
    }
}
