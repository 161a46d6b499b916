namespace HiggsCluster.Training.Model;

/// <summary>
/// The architecture of bosonai/higgs-audio-v2-generation-3B-base as its config.json states it (Llama-3.2-3B backbone,
/// DualFFN on every layer, 8 codebooks of 1024 + BOS/EOS): the shapes benchmarks and the memory table use.
/// </summary>
public static class ReleasedShapes
{
    public static HiggsAudioConfig Higgs3B() => new()
    {
        Text = new LlamaTextConfig
        {
            VocabSize = 128256, HiddenSize = 3072, IntermediateSize = 8192, NumHiddenLayers = 28,
            NumAttentionHeads = 24, NumKeyValueHeads = 8, HeadDim = 128, RmsNormEps = 1e-5, RopeTheta = 500000,
            RopeScaling = new RopeScaling("llama3", 32, 1, 4, 8192),
        },
        AdapterType = AudioAdapterType.DualFfnFastForward,
        DualFfnLayers = Enumerable.Range(0, 28).ToArray(),
        SkipAudioTower = true, EncodeWhisperEmbed = false, EncodeAudioInTokens = true, UseDelayPattern = true,
        AudioNumCodebooks = 8, AudioCodebookSize = 1024, AudioStreamBosId = 1024, AudioStreamEosId = 1025,
        AudioInTokenIdx = 128015, AudioOutTokenIdx = 128016, PadTokenId = 128001,
    };
}
