using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

/// <summary>What an area's port produced for one run, plus any area-specific verdicts.</summary>
public sealed class GoldenOutputs
{
    /// <summary>Actual tensors, compared by name with every expected tensor of the run.</summary>
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Optional boolean masks (same leading shape as the tensor): compare only where true.</summary>
    public Dictionary<string, Tensor> CompareWhere { get; } = new(StringComparer.Ordinal);

    /// <summary>Expected names the area checks itself (e.g. codes under the near-tie rule).</summary>
    public HashSet<string> CheckedByArea { get; } = new(StringComparer.Ordinal);

    /// <summary>Failures found by area-specific checks (JSON fields, near-tie codes, ...).</summary>
    public List<string> Failures { get; } = new();

    /// <summary>Largest error seen by area-specific checks, for the report line.</summary>
    public double AreaWorstError { get; set; }
}

/// <summary>A port of one golden area. Throws when the port refuses the run's input.</summary>
public interface IGoldenArea
{
    string Name { get; }
    GoldenOutputs Compute(GoldenRun run);
}
