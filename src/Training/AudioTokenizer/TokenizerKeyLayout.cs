namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>Whether encode/decode reads a checkpoint tensor, or it is training-only state that is tolerated but ignored.</summary>
public enum KeyRole { Used, Unused }

public sealed record KeySpec(string Name, long[] Shape, KeyRole Role);

/// <summary>
/// The original (July 2025, <c>model.pth</c>) key layout of the Higgs audio tokenizer state_dict, derived from the sizes.
/// The loader checks a checkpoint against it strictly and the tiny-model writer produces exactly it.
/// </summary>
public static class TokenizerKeyLayout
{
    public static IReadOnlyList<KeySpec> Build(TokenizerSizes s)
    {
        var keys = new List<KeySpec>();
        void Add(string n, KeyRole r, params long[] shape) => keys.Add(new KeySpec(n, shape, r));
        void WnConv(string p, long cout, long cin, long k, KeyRole r = KeyRole.Used)
        {
            Add(p + ".bias", r, cout); Add(p + ".weight_g", r, cout, 1, 1); Add(p + ".weight_v", r, cout, cin, k);
        }
        void Snake(string p, long c) => Add(p + ".alpha", KeyRole.Used, 1, c, 1);
        void DacResUnit(string p, long c)
        {
            Snake(p + ".block.0", c); WnConv(p + ".block.1", c, c, 7); Snake(p + ".block.2", c); WnConv(p + ".block.3", c, c, 1);
        }

        // DAC acoustic encoder
        long w = s.EncoderWidth;
        WnConv("encoder.block.0", w, 1, 7);
        for (int i = 0; i < s.Ratios.Length; i++)
        {
            var p = $"encoder.block.{i + 1}.block";
            for (int r = 0; r < 3; r++) DacResUnit($"{p}.{r}", w);
            Snake($"{p}.3", w);
            WnConv($"{p}.4", 2 * w, w, 2 * s.Ratios[i]);
            w *= 2;
        }
        Snake($"encoder.block.{s.Ratios.Length + 1}", w);
        WnConv($"encoder.block.{s.Ratios.Length + 2}", s.D, w, 3);

        // DAC acoustic decoder; a ConvTranspose1d weight is (in, out, k) and its weight norm runs over dim 0 = in
        long c = s.DecoderWidth;
        WnConv("decoder_2.model.0", c, s.D, 7);
        for (int i = 0; i < s.Ratios.Length; i++)
        {
            var p = $"decoder_2.model.{i + 1}.block";
            Snake($"{p}.0", c);
            Add($"{p}.1.bias", KeyRole.Used, c / 2);
            Add($"{p}.1.weight_g", KeyRole.Used, c, 1, 1);
            Add($"{p}.1.weight_v", KeyRole.Used, c, c / 2, 2 * s.Ratios[i]);
            for (int r = 0; r < 3; r++) DacResUnit($"{p}.{r + 2}", c / 2);
            c /= 2;
        }
        Snake($"decoder_2.model.{s.Ratios.Length + 1}", c);
        WnConv($"decoder_2.model.{s.Ratios.Length + 2}", 1, c, 7);

        // HuBERT (transformers HubertModel names)
        var h = s.Hubert; long hd = h.Hidden;
        long prev = 1;
        for (int i = 0; i < h.ConvDim.Length; i++)
        {
            Add($"semantic_model.feature_extractor.conv_layers.{i}.conv.weight", KeyRole.Used, h.ConvDim[i], prev, h.ConvKernel[i]);
            prev = h.ConvDim[i];
        }
        Add("semantic_model.feature_extractor.conv_layers.0.layer_norm.weight", KeyRole.Used, h.ConvDim[0]);
        Add("semantic_model.feature_extractor.conv_layers.0.layer_norm.bias", KeyRole.Used, h.ConvDim[0]);
        Add("semantic_model.feature_projection.layer_norm.weight", KeyRole.Used, prev);
        Add("semantic_model.feature_projection.layer_norm.bias", KeyRole.Used, prev);
        Add("semantic_model.feature_projection.projection.weight", KeyRole.Used, hd, prev);
        Add("semantic_model.feature_projection.projection.bias", KeyRole.Used, hd);
        Add("semantic_model.encoder.pos_conv_embed.conv.bias", KeyRole.Used, hd);
        Add("semantic_model.encoder.pos_conv_embed.conv.parametrizations.weight.original0", KeyRole.Used, 1, 1, h.PosConvKernel);
        Add("semantic_model.encoder.pos_conv_embed.conv.parametrizations.weight.original1", KeyRole.Used, hd, hd / h.PosConvGroups, h.PosConvKernel);
        Add("semantic_model.encoder.layer_norm.weight", KeyRole.Used, hd);
        Add("semantic_model.encoder.layer_norm.bias", KeyRole.Used, hd);
        for (int l = 0; l < h.Layers; l++)
        {
            var p = $"semantic_model.encoder.layers.{l}";
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                Add($"{p}.attention.{proj}.weight", KeyRole.Used, hd, hd); Add($"{p}.attention.{proj}.bias", KeyRole.Used, hd);
            }
            Add($"{p}.layer_norm.weight", KeyRole.Used, hd); Add($"{p}.layer_norm.bias", KeyRole.Used, hd);
            Add($"{p}.feed_forward.intermediate_dense.weight", KeyRole.Used, h.Intermediate, hd);
            Add($"{p}.feed_forward.intermediate_dense.bias", KeyRole.Used, h.Intermediate);
            Add($"{p}.feed_forward.output_dense.weight", KeyRole.Used, hd, h.Intermediate);
            Add($"{p}.feed_forward.output_dense.bias", KeyRole.Used, hd);
            Add($"{p}.final_layer_norm.weight", KeyRole.Used, hd); Add($"{p}.final_layer_norm.bias", KeyRole.Used, hd);
        }
        Add("semantic_model.masked_spec_embed", KeyRole.Unused, hd);

        // xcodec semantic encoder (used) and decoder (training only)
        long sd = s.SemanticDim;
        Add("encoder_semantic.conv.conv.weight", KeyRole.Used, sd, sd, 3);
        SemanticBlocks("encoder_semantic", KeyRole.Used);
        Add("decoder_semantic.conv1.conv.weight", KeyRole.Unused, sd, sd, 3);
        SemanticBlocks("decoder_semantic", KeyRole.Unused);
        Add("decoder_semantic.conv2.conv.weight", KeyRole.Unused, sd, sd, 3);
        void SemanticBlocks(string p, KeyRole r)
        {
            for (int b = 0; b < 2; b++)
            {
                for (int u = 0; u < 2; u++)
                {
                    Add($"{p}.conv_blocks.{b}.res_units.{u}.conv1.conv.weight", r, sd, sd, 3);
                    Add($"{p}.conv_blocks.{b}.res_units.{u}.conv2.weight", r, sd, sd, 1);
                }
                Add($"{p}.conv_blocks.{b}.conv.conv.weight", r, sd, sd, 3);
                Add($"{p}.conv_blocks.{b}.conv.conv.bias", r, sd);
            }
        }

        // residual VQ; upstream uses identity projections when codebook_dim equals the quantizer dim
        long q = s.QuantizerDim;
        for (int i = 0; i < s.NQ; i++)
        {
            var p = $"quantizer.vq.layers.{i}";
            if (s.CodebookDim != s.QuantizerDim)
            {
                Add($"{p}.project_in.weight", KeyRole.Used, s.CodebookDim, q); Add($"{p}.project_in.bias", KeyRole.Used, s.CodebookDim);
                Add($"{p}.project_out.weight", KeyRole.Used, q, s.CodebookDim); Add($"{p}.project_out.bias", KeyRole.Used, q);
            }
            Add($"{p}._codebook.embed", KeyRole.Used, s.Bins, s.CodebookDim);
            Add($"{p}._codebook.inited", KeyRole.Unused, 1);
            Add($"{p}._codebook.cluster_size", KeyRole.Unused, s.Bins);
            Add($"{p}._codebook.embed_avg", KeyRole.Unused, s.Bins, s.CodebookDim);
        }
        Add("fc_prior.weight", KeyRole.Used, q, q); Add("fc_prior.bias", KeyRole.Used, q);
        Add("fc_post1.weight", KeyRole.Unused, sd, q); Add("fc_post1.bias", KeyRole.Unused, sd);
        Add("fc_post2.weight", KeyRole.Used, s.D, q); Add("fc_post2.bias", KeyRole.Used, s.D);
        return keys;
    }
}
