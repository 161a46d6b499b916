using HiggsCluster.Training.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// A Linear layer whose weight starts uninitialised (the checkpoint fills it, so no random-init cost) and that can
/// carry a LoRA branch. Without LoRA the state-dict keys are those of nn.Linear (<c>weight</c>, <c>bias</c>).
/// </summary>
public sealed class Projection : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private LoraBranch? _lora;

    public long InFeatures { get; }
    public long OutFeatures { get; }
    public Parameter Weight => weight;
    public Parameter? Bias => bias;
    public LoraBranch? Lora => _lora;

    public Projection(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base("linear")
    {
        InFeatures = inFeatures; OutFeatures = outFeatures;
        weight = new Parameter(torch.empty(outFeatures, inFeatures, dtype, device), requires_grad: true);
        if (hasBias) bias = new Parameter(torch.empty(outFeatures, dtype, device), requires_grad: true);
        RegisterComponents();
    }

    public void AttachLora(LoraBranch branch)
    {
        if (_lora is not null) throw new InvalidOperationException("a LoRA branch is already attached to this projection");
        if (branch.A.shape[1] != InFeatures || branch.B.shape[0] != OutFeatures)
            throw new ArgumentException($"LoRA branch [{branch.B.shape[0]}x{branch.A.shape[1]}] does not fit a {OutFeatures}x{InFeatures} projection");
        _lora = branch;
        register_module("lora_A", branch.AModule);
        register_module("lora_B", branch.BModule);
    }

    public override Tensor forward(Tensor x)
    {
        var y = nn.functional.linear(x, weight, bias);
        if (_lora is null) return y;
        var delta = _lora.Delta(x, training);
        return y.Plus(delta.dtype == y.dtype ? delta : delta.to_type(y.dtype));
    }

    /// <summary>W' = W + scaling·B·A computed in fp32, then cast to <paramref name="dtype"/> (default: the base dtype) once.</summary>
    public Tensor MergedWeight(ScalarType? dtype = null)
    {
        using var _ = no_grad();
        if (_lora is null) return weight.detach().to_type(dtype ?? weight.dtype).clone();
        var w = weight.detach().to_type(ScalarType.Float32);
        var delta = _lora.B.detach().to_type(ScalarType.Float32).matmul(_lora.A.detach().to_type(ScalarType.Float32)).Times(_lora.Scaling);
        return w.Plus(delta).to_type(dtype ?? weight.dtype);
    }
}

/// <summary>Llama RMSNorm: normalise in fp32, cast back to the input dtype, then scale by the weight.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    public RmsNorm(long size, double eps, ScalarType dtype, Device device) : base("rms_norm")
    {
        _eps = eps;
        weight = new Parameter(torch.ones(size, dtype, device), requires_grad: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var x32 = x.to_type(ScalarType.Float32);
        var y = x32 * torch.rsqrt(x32.pow(HeldScalars.Two).mean(new long[] { -1 }, keepdim: true).Plus(_eps));
        return weight * y.to_type(x.dtype);
    }
}

/// <summary>nn.LayerNorm with weight and bias (Whisper encoder).</summary>
public sealed class LayerNormModule : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long _size;

    public LayerNormModule(long size, ScalarType dtype, Device device) : base("layer_norm")
    {
        _size = size;
        weight = new Parameter(torch.ones(size, dtype, device), requires_grad: true);
        bias = new Parameter(torch.zeros(size, dtype, device), requires_grad: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, new[] { _size }, weight, bias, 1e-5);
}

/// <summary>An embedding table holding one <c>weight</c> (rows gathered with index_select, so gradients flow).</summary>
public sealed class EmbeddingTable : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public Parameter Weight => weight;

    public EmbeddingTable(long rows, long dim, ScalarType dtype, Device device) : base("embedding")
    {
        weight = new Parameter(torch.empty(rows, dim, dtype, device), requires_grad: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var shape = ids.shape.Append(weight.shape[1]).ToArray();
        return weight.index_select(0, ids.flatten()).view(shape);
    }
}

/// <summary>Conv1d whose parameters are filled from the checkpoint.</summary>
public sealed class Conv1dModule : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long _stride, _padding;

    public Conv1dModule(long inCh, long outCh, long kernel, long stride, long padding, ScalarType dtype, Device device) : base("conv1d")
    {
        _stride = stride; _padding = padding;
        weight = new Parameter(torch.empty(outCh, inCh, kernel, dtype, device), requires_grad: true);
        bias = new Parameter(torch.empty(outCh, dtype, device), requires_grad: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => nn.functional.conv1d(x, weight, bias, _stride, _padding);
}
