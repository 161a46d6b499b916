using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The xcodec semantic Encoder (<c>encoder_semantic.</c>): conv, then 2 blocks of 2 ELU residual units and a biased conv.</summary>
public static class SemanticEncoder
{
    private const string P = "encoder_semantic.";

    /// <summary>(B, C, T) → (B, C, T).</summary>
    public static Tensor Forward(TokenizerWeights w, Tensor x)
    {
        x = CpuConv.Conv1d(x, w[P + "conv.conv.weight"], null, padding: 1);
        for (int b = 0; b < 2; b++)
        {
            var p = $"{P}conv_blocks.{b}.";
            for (int u = 0; u < 2; u++)
            {
                var y = CpuConv.Conv1d(HeldScalars.Elu(x, 1.0), w[$"{p}res_units.{u}.conv1.conv.weight"], null, padding: 1);
                y = CpuConv.Conv1d(HeldScalars.Elu(y, 1.0), w[$"{p}res_units.{u}.conv2.weight"], null);
                x = x.Plus(y);
            }
            x = CpuConv.Conv1d(x, w[p + "conv.conv.weight"], w[p + "conv.conv.bias"], padding: 1);
        }
        return x;
    }
}
