using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// Activation checkpointing of one decoder layer (the re-entrant scheme): the forward runs without building a graph,
/// so only the layer input is kept; the backward runs the layer again with grad enabled and back-propagates through
/// the recomputed graph, which accumulates the weight (LoRA) gradients directly and hands the input gradient on.
/// Dropout must draw the same masks in the recomputation: on the CPU the generator state is saved and replayed (so the
/// result is bit-identical to running without checkpointing); on CUDA, whose generator state TorchSharp does not
/// expose, each checkpointed layer reseeds the CUDA generator from the CPU stream before both passes.
/// </summary>
public sealed class LayerRecompute : autograd.SingleTensorFunction<LayerRecompute>
{
    private static long _recomputations;

    public override string Name => "HiggsDecoderLayerRecompute";

    /// <summary>Layer recomputations done by backward passes in this process (lets tests see that checkpointing ran).</summary>
    public static long Recomputations => Interlocked.Read(ref _recomputations);

    public static Tensor Run(DecoderLayer layer, Tensor x, LayerContext ctx)
    {
        // The embeddings are frozen, so the first layer's input carries no grad; without a grad-requiring input the
        // function would not join the graph at all and the layer's LoRA weights would get no gradient.
        var input = x.requires_grad ? x : x.detach().requires_grad_(true);
        return apply(input, layer, ctx);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var layer = (DecoderLayer)vars[1];
        var lctx = (LayerContext)vars[2];
        ctx.save_for_backward(new List<Tensor> { x });
        ctx.save_data("layer", layer);
        ctx.save_data("context", lctx);
        ctx.save_data("rng", new RngState(torch.get_rng_state()));
        if (x.device_type == DeviceType.CUDA)
        {
            long seed = torch.randint(0, int.MaxValue, new long[] { 1 }, ScalarType.Int64).item<long>();
            torch.cuda.manual_seed(seed);
            ctx.save_data("cuda_seed", seed);
        }
        using var scope = NewDisposeScope();
        return layer.Forward(x, lctx).MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var x = ctx.get_saved_variables()[0];
        var layer = (DecoderLayer)ctx.get_data("layer");
        var lctx = (LayerContext)ctx.get_data("context");
        var rng = ((RngState)ctx.get_data("rng")).State;
        // The recomputation must not change the random stream seen by the rest of the step.
        var after = torch.get_rng_state();
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            var xr = x.detach().requires_grad_(true);
            torch.set_rng_state(rng);
            if (ctx.get_data("cuda_seed") is long seed) torch.cuda.manual_seed(seed);
            Interlocked.Increment(ref _recomputations);
            using (enable_grad())
            {
                var y = layer.Forward(xr, lctx);
                y.backward(new[] { gradOutput });
            }
            gradInput = (xr.grad ?? zeros_like(xr)).MoveToOuterDisposeScope();
        }
        torch.set_rng_state(after);
        return new List<Tensor> { gradInput, null!, null! };
    }
}

/// <summary>Boxes the generator state: the autograd context warns when a bare tensor is stored as data.</summary>
internal sealed record RngState(Tensor State);
