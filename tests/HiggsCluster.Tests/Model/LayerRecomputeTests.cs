using HiggsCluster.Training.Loss;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

// Dropout draws from the process-wide torch RNG, so this runs in the non-parallel Engine collection.
[Collection("Engine"), Trait("Category", "Model")]
public sealed class LayerRecomputeTests
{
    /// <summary>
    /// The recomputed layer runs the same kernels on the same inputs in the same order, and each LoRA weight is used
    /// once per layer (so its gradient is not a sum whose order could change); hence loss and gradients must be
    /// bit-identical, with dropout on as well because the random state is replayed for the recomputation.
    /// </summary>
    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    public void Checkpointed_layers_give_identical_loss_and_lora_gradients(double dropout)
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like(layers: 3);
        var batch = TinyModels.TwoSamples(cfg);

        (float Loss, Dictionary<string, Tensor> Grads, float NextRandom) Step(bool checkpoint)
        {
            var model = TinyModels.Random(cfg, seed: 11);
            var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = dropout }, init: new Generator(5));
            using (no_grad())
            {
                var g = new Generator(6);
                foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape, generator: g) * 0.1);
            }
            model.train();
            model.GradientCheckpointing = checkpoint;
            torch.manual_seed(1234);
            var o = model.Forward(batch);
            var loss = HiggsLoss.Compute(o.Logits, o.ExpandedLabels, o.AudioLogits, batch.LabelAudioIds).Loss;
            long before = LayerRecompute.Recomputations;
            loss.backward();
            if (checkpoint) Assert.True(LayerRecompute.Recomputations - before >= cfg.Text.NumHiddenLayers);
            // The random stream after the step is the same too, so checkpointing does not shift later dropout masks.
            var next = rand(1).item<float>();
            return (loss.item<float>(), adapter.NamedParameters().ToDictionary(p => p.Key, p => p.Param.grad!.clone()), next);
        }

        var plain = Step(false);
        var ckpt = Step(true);
        Assert.Equal(plain.Loss, ckpt.Loss);
        Assert.Equal(plain.NextRandom, ckpt.NextRandom);
        Assert.Equal(plain.Grads.Keys.Order(), ckpt.Grads.Keys.Order());
        foreach (var (key, g) in plain.Grads)
        {
            Assert.True(g.abs().max().item<float>() > 0, $"{key} got no gradient");
            Assert.Equal(0f, (g - ckpt.Grads[key]).abs().max().item<float>());
        }
    }
}
