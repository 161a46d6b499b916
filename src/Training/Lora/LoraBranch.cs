using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Lora;

/// <summary>A bias-free matrix holding one <c>weight</c> parameter: the state-dict shape of PEFT's lora_A / lora_B.</summary>
public sealed class LoraMatrix : nn.Module
{
    private readonly Parameter weight;

    public Parameter Weight => weight;

    public LoraMatrix(long rows, long cols, ScalarType dtype, Device device) : base("lora_matrix")
    {
        weight = new Parameter(torch.zeros(rows, cols, dtype, device), requires_grad: true);
        RegisterComponents();
    }
}

/// <summary>
/// The low-rank branch PEFT adds to a Linear: <c>B(A(dropout(x))) * scaling</c>. The owning projection registers
/// <see cref="AModule"/> and <see cref="BModule"/> as its children <c>lora_A</c> / <c>lora_B</c>, so the state-dict
/// keys are PEFT's saved keys without the <c>base_model.model.</c> prefix.
/// </summary>
public sealed class LoraBranch
{
    public LoraMatrix AModule { get; }
    public LoraMatrix BModule { get; }
    public int Rank { get; }
    public double Scaling { get; }
    public double Dropout { get; }
    public Parameter A => AModule.Weight;
    public Parameter B => BModule.Weight;

    public LoraBranch(long inFeatures, long outFeatures, int rank, double scaling, double dropout, ScalarType dtype, Device device)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), "LoRA rank must be positive");
        if (dropout < 0 || dropout >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), "LoRA dropout must be in [0, 1)");
        Rank = rank; Scaling = scaling; Dropout = dropout;
        AModule = new LoraMatrix(rank, inFeatures, dtype, device);
        BModule = new LoraMatrix(outFeatures, rank, dtype, device);
    }

    /// <summary>PEFT's default init: A ~ kaiming_uniform(a=√5) = U(±1/√in), B = 0, so the adapter starts as identity.</summary>
    public void ResetParameters(Generator? generator = null)
    {
        using var _ = no_grad();
        double bound = 1.0 / Math.Sqrt(A.shape[1]);
        var u = torch.rand(A.shape, ScalarType.Float32, generator: generator).Times(2 * bound).Minus(bound);
        A.copy_(u);
        B.zero_();
    }

    public Tensor Delta(Tensor x, bool training)
    {
        var h = x.dtype == A.dtype ? x : x.to_type(A.dtype);
        if (Dropout > 0 && training) h = nn.functional.dropout(h, Dropout, true);
        return nn.functional.linear(nn.functional.linear(h, A), B).Times(Scaling);
    }
}
