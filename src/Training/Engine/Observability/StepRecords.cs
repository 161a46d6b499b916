namespace HiggsCluster.Training.Engine.Observability;

/// <summary>
/// What one step or one validation writes, built the same way by the engine loop and the cluster's lead worker: the
/// metrics.jsonl record and the TensorBoard scalars.
/// </summary>
public static class StepRecords
{
    public static StepMetrics Of(long step, int epoch, GradientResult g, ApplyResult a, double seconds) =>
        new(step, epoch, g.Loss, g.TextLoss, g.AudioLoss, g.CodebookLosses, a.Lr, a.GradNorm,
            g.Positions, g.Positions / Math.Max(1e-9, seconds), seconds, !a.Applied, a.SkipReason);

    /// <summary>A step's scalars, at TensorBoard step <c>m.Step + 1</c> (the optimizer steps taken after it).</summary>
    public static void Write(TensorBoardWriter? tb, StepMetrics m) =>
        tb?.Scalars(m.Step + 1, new[] { ("train/loss", m.Loss), ("train/text_loss", m.TextLoss), ("train/audio_loss", m.AudioLoss),
                ("train/lr", m.Lr), ("train/grad_norm", m.GradNorm), ("train/tokens_per_s", m.TokensPerSecond) }
            .Concat(m.CodebookLosses.Select((x, c) => ($"train/codebook_{c}", x))));

    /// <summary>A validation's scalars, at the step count it was taken after.</summary>
    public static void Write(TensorBoardWriter? tb, ValidationResult v) =>
        tb?.Scalars(v.Step, new[] { ("val/loss", v.Loss), ("val/text_loss", v.TextLoss), ("val/audio_loss", v.AudioLoss) }
            .Concat(v.CodebookLosses.Select((x, c) => ($"val/codebook_{c}", x))));
}
