using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// The prompt as upstream's generation example and serve engine build it: an optional system message
/// "Generate audio following instruction." with the scene between &lt;|scene_desc_start|&gt; and &lt;|scene_desc_end|&gt;
/// (examples/generation.py, prepare_generation_context); for a voice clone, the reference transcript as a user turn
/// and the reference clip as the assistant's audio turn; the text as the last user turn; then the assistant header and
/// &lt;|audio_out_bos|&gt; (serve_engine.py, _prepare_inputs with force_audio_gen). Tokenised and collated by the same
/// code as training samples, so a trained layout and the prompt cannot disagree.
/// </summary>
public static class GenerationPrompt
{
    public const string SystemPrefix = "Generate audio following instruction.";
    public const string AssistantPostfix = "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>";

    public static ChatMLSample Messages(GenerationRequest r)
    {
        var messages = new List<ChatMessage>();
        if (r.Scene is { } scene && scene.Length > 0)
            messages.Add(new ChatMessage(ChatRoles.System, new ChatContent[] { new TextContent($"{SystemPrefix}\n\n<|scene_desc_start|>\n{scene}\n<|scene_desc_end|>") }));
        if (r.ReferenceAudio is { } clip)
        {
            messages.Add(new ChatMessage(ChatRoles.User, new ChatContent[] { new TextContent(r.ReferenceText!) }));
            var full = Path.GetFullPath(clip);
            messages.Add(new ChatMessage(ChatRoles.Assistant, new ChatContent[] { new AudioContent(full) { ResolvedPath = full } }));
        }
        messages.Add(new ChatMessage(ChatRoles.User, new ChatContent[] { new TextContent(r.Text) }));
        return new ChatMLSample(messages);
    }

    /// <summary>
    /// The prompt of a training entry: its messages up to its last assistant audio turn (that turn is what the model
    /// should say), or null when it has none (an understanding entry answers in text).
    /// </summary>
    public static ChatMLSample? FromEntry(ChatMLSample entry)
    {
        int last = -1;
        for (int i = 0; i < entry.Messages.Count; i++)
            if (entry.Messages[i].Role == ChatRoles.Assistant && entry.Messages[i].Content.Any(c => c is AudioContent)) last = i;
        return last < 0 ? null : new ChatMLSample(entry.Messages.Take(last).ToList(), Speaker: entry.Speaker);
    }

    /// <summary>The audio the model should say for <paramref name="entry"/> (its last assistant audio), if any.</summary>
    public static AudioContent? TargetAudio(ChatMLSample entry) =>
        entry.Messages.LastOrDefault(m => m.Role == ChatRoles.Assistant && m.Content.Any(c => c is AudioContent))?.Content.OfType<AudioContent>().Last();

    /// <summary>The prompt batch (batch size 1) of <paramref name="sample"/>: its tokens, the assistant postfix, its audio codes.</summary>
    public static HiggsBatch Collate(ChatMLSample sample, SampleBuilder builder, HiggsAudioCollator collator, TextTokenizer tokenizer)
    {
        var built = builder.Build(0, sample).Sample;
        var postfix = tokenizer.Encode(AssistantPostfix).Select(i => (long)i).ToArray();
        var ids = cat(new[] { built.InputIds.to_type(ScalarType.Int64), tensor(postfix) }, 0);
        var labels = HeldScalars.Full(ids.shape[0], -100L, ScalarType.Int64);
        var prompt = new ChatMLDatasetSample
        {
            InputIds = ids, LabelIds = labels,
            AudioIdsConcat = built.AudioIdsConcat, AudioIdsStart = built.AudioIdsStart,
            AudioWaveformsConcat = built.AudioWaveformsConcat, AudioWaveformsStart = built.AudioWaveformsStart,
            AudioSampleRate = built.AudioSampleRate, AudioSpeakerIndices = built.AudioSpeakerIndices,
            AudioLabelIdsConcat = built.AudioLabelIdsConcat,
        };
        return collator.Collate(new[] { prompt });
    }
}
