using System.Text.Json.Nodes;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Training.Data;

/// <summary>Where the k-th audio content sits in the token sequence.</summary>
/// <param name="Index">Position in <see cref="PreparedSample.AudioContents"/>.</param>
/// <param name="IsAudioOut">True for an assistant audio (&lt;|AUDIO_OUT|&gt;), false for system/user audio (&lt;|AUDIO|&gt;).</param>
/// <param name="Position">Index of the placeholder token in the input tokens.</param>
/// <param name="Label">The placeholder's label (-100 when the audio is not a loss target).</param>
public sealed record AudioPlacement(int Index, bool IsAudioOut, int Position, int Label);

/// <summary>What upstream's prepare_chatml_sample returns, plus the derived audio facts the pipeline needs.</summary>
public sealed record PreparedSample(
    int[] InputTokens,
    int[] LabelTokens,
    IReadOnlyList<AudioContent> AudioContents,
    JsonNode? Speaker,
    IReadOnlyList<AudioPlacement> AudioPlacements)
{
    /// <summary>The audios whose codes are loss targets: placeholder &lt;|AUDIO_OUT|&gt; with a label other than -100.</summary>
    public IReadOnlyList<AudioContent> AudioLabelContents =>
        AudioPlacements.Where(p => p.IsAudioOut && p.Label != ChatMLPreparer.IgnoreLabel).Select(p => AudioContents[p.Index]).ToList();

    /// <summary>The speaker as text (a string as is, another JSON value as its JSON), null when none.</summary>
    public string? SpeakerText => Speaker switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => Speaker.ToJsonString(),
    };

    /// <summary>Every (text, ids) passed to the tokenizer, in order, when asked for (their concatenation is <see cref="InputTokens"/>).</summary>
    public IReadOnlyList<(string Text, int[] Ids)>? TokenizerCalls { get; init; }
}

/// <summary>
/// Port of upstream <c>prepare_chatml_sample</c> (boson_multimodal/dataset/chatml_dataset.py): builds the Llama-3 chat
/// template piece by piece, tokenizing each piece on its own (so ids never merge across pieces), and labels the
/// assistant turns at or after <c>start_index</c>.
/// </summary>
public static class ChatMLPreparer
{
    public const int IgnoreLabel = -100;

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TextTokenizer, HiggsSpecialTokens> Specials = new();

    private const string AudioInPiece = "<|audio_bos|><|AUDIO|><|audio_eos|>";
    private const string AudioOutPiece = "<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>";

    public static PreparedSample Prepare(ChatMLSample sample, TextTokenizer tokenizer, bool recordTokenizerCalls = false)
    {
        var special = Specials.GetValue(tokenizer, HiggsSpecialTokens.From);
        var input = new List<int>();
        var labels = new List<int>();
        var audios = new List<AudioContent>();
        var placements = new List<AudioPlacement>();
        var calls = recordTokenizerCalls ? new List<(string, int[])>() : null;

        int[] Encode(string text)
        {
            var ids = tokenizer.Encode(text);
            calls?.Add((text, ids));
            return ids;
        }
        void Append(int[] ids, bool trained)
        {
            input.AddRange(ids);
            foreach (var id in ids) labels.Add(trained ? id : IgnoreLabel);
        }

        var messages = sample.Messages;
        for (int turn = 0; turn < messages.Count; turn++)
        {
            var m = messages[turn];
            if (!ChatRoles.IsKnown(m.Role))
                throw new ArgumentException($"messages[{turn}].role: unknown role '{m.Role}' (expected system, user or assistant)", nameof(sample));
            bool assistant = m.Role == ChatRoles.Assistant;
            bool trained = assistant && (sample.StartIndex is null || turn >= sample.StartIndex);

            var header = (turn == 0 ? "<|begin_of_text|>" : "") + $"<|start_header_id|>{m.Role}<|end_header_id|>\n\n";
            Append(Encode(header), false);

            if (!string.IsNullOrEmpty(m.Recipient))
            {
                if (!assistant)
                    throw new ArgumentException($"messages[{turn}].recipient: a recipient is only allowed on assistant messages (role is '{m.Role}')", nameof(sample));
                // upstream labels the recipient even in untrained turns
                Append(Encode($"{m.Recipient}<|recipient|>"), true);
            }

            for (int k = 0; k < m.Content.Count; k++)
            {
                switch (m.Content[k])
                {
                    case TextContent { Type: "text" } t:
                        Append(Encode(t.Text), trained);
                        break;
                    case AudioContent { Type: "audio" } a:
                    {
                        var ids = Encode(assistant ? AudioOutPiece : AudioInPiece);
                        int placeholder = assistant ? special.AudioOut : special.Audio;
                        int at = Array.IndexOf(ids, placeholder);
                        if (at < 0)
                            throw new InvalidOperationException($"tokenizer {tokenizer.Source} does not map the audio placeholder piece to its placeholder token");
                        placements.Add(new AudioPlacement(audios.Count, assistant, input.Count + at, trained ? placeholder : IgnoreLabel));
                        audios.Add(a);
                        Append(ids, trained);
                        break;
                    }
                    case TextContent { Type: "audio" } or AudioContent { Type: "text" }:
                        throw new ArgumentException($"messages[{turn}].content[{k}]: type '{m.Content[k].Type}' does not match the item's fields", nameof(sample));
                    default:
                        break; // upstream ignores content types other than text and audio
                }
            }

            bool nextIsAssistant = turn + 1 < messages.Count && messages[turn + 1].Role == ChatRoles.Assistant;
            Append(Encode(assistant && nextIsAssistant ? "<|eom_id|>" : "<|eot_id|>"), trained);
        }

        JsonNode? speaker = sample.Speaker is { } s ? JsonValue.Create(s)
            : sample.Misc is { } misc && misc.TryGetPropertyValue("speaker", out var ms) ? ms?.DeepClone() : null;

        return new PreparedSample(input.ToArray(), labels.ToArray(), audios, speaker, placements) { TokenizerCalls = calls };
    }
}
