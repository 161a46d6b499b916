using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;

namespace HiggsCluster.Training.Engine.Memory;

/// <summary>The <see cref="ModelFacts"/> of a built model with its adapter (parameter counts are counted, not derived).</summary>
public static class MemoryFacts
{
    public static ModelFacts Of(HiggsAudioModel model, LoraAdapter adapter, bool cuda)
    {
        var t = model.Config.Text;
        var lora = adapter.Config;
        return new ModelFacts(t.NumHiddenLayers, t.HiddenSize, t.IntermediateSize, t.NumAttentionHeads * t.HeadDim, t.NumKeyValueHeads * t.HeadDim,
            t.VocabSize, model.Config.AudioNumCodebooks, model.Config.CodebookVocab,
            model.BaseParameters().Sum(p => p.Param.numel()), (int)ElementSize(model.DType),
            adapter.Parameters().Sum(p => p.numel()), lora.R, lora.TargetModules, lora.Dropout > 0,
            model.Config.DualFfnLayers.Count > 0, cuda);
    }

    private static long ElementSize(torch.ScalarType t) => t switch
    {
        torch.ScalarType.BFloat16 or torch.ScalarType.Float16 => 2,
        torch.ScalarType.Float64 => 8,
        _ => 4,
    };
}
