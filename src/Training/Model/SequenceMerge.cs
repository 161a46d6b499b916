using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>The merged (expanded) sequence: every audio placeholder replaced by its frames.</summary>
public sealed record MergedSequence(
    Tensor Embeds,                  // (B,L,H)
    Tensor AttentionMask,           // (B,L) long
    Tensor? Labels,                 // (B,L) long, unshifted, -100 on audio
    Tensor PositionIds,             // (B,L) long
    Tensor InputIds,                // (B,L) long
    Tensor AudioInMask,             // (B,L) bool
    Tensor AudioInDiscreteCodesMask,// (B,L) bool
    Tensor AudioOutMask);           // (B,L) bool

/// <summary>
/// Port of upstream merge_input_ids_with_audio_features. Placement is computed on the host from the (small) id
/// tensors; the embeddings are then gathered from one pool with a single index_select, so gradients flow to every
/// source (text embeddings, Whisper features, audio codebook embeddings).
/// </summary>
public static class SequenceMerge
{
    public const long IgnoreIndex = -100;

    /// <param name="features">Whisper frames (N_clips, T', H) or null; <paramref name="featureLengths"/> valid frames per clip.</param>
    /// <param name="audioIn">Audio-in code embeddings (N_in, H) or null; <paramref name="audioInStart"/> segment starts.</param>
    /// <param name="audioOut">Audio-out code embeddings (N_out, H) or null; <paramref name="audioOutStart"/> segment starts.</param>
    public static MergedSequence Merge(
        Tensor textEmbeds, Tensor inputIds, Tensor attentionMask, Tensor? labelIds,
        Tensor? features, Tensor? featureLengths,
        Tensor? audioIn, Tensor? audioInStart,
        Tensor? audioOut, Tensor? audioOutStart,
        long audioInTokenId, long audioOutTokenId, long padTokenId, int roundTo, bool leftPadding)
    {
        if (features is not null && features.shape[0] == 0) features = null;
        if (audioIn is not null && audioIn.shape[0] == 0) audioIn = null;
        if (audioOut is not null && audioOut.shape[0] == 0) audioOut = null;
        long b = textEmbeds.shape[0], s = textEmbeds.shape[1], hdim = textEmbeds.shape[2];
        var dev = textEmbeds.device;
        var ids = inputIds.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        var att = attentionMask.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        var lab = labelIds?.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        if (ids.Length != b * s || att.Length != b * s) throw new InvalidDataException("input_ids / attention_mask do not match the text embeddings' shape");
        if (lab is not null && lab.Length != b * s) throw new InvalidDataException($"label_ids shape [{string.Join(",", labelIds!.shape)}] differs from input_ids [{b},{s}]");

        int nInTok = ids.Count(x => x == audioInTokenId), nOutTok = ids.Count(x => x == audioOutTokenId);
        long[]? featLen = null;
        if (features is not null)
        {
            featLen = featureLengths!.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
            if (featLen.Length != nInTok)
                throw new InvalidDataException($"{featLen.Length} Whisper feature clips but {nInTok} <|AUDIO|> tokens in input_ids");
        }
        long[]? inLen = audioIn is null ? null : SegmentLengths("audio_in", audioInStart, audioIn.shape[0], nInTok);
        long[]? outLen = audioOut is null ? null : SegmentLengths("audio_out", audioOutStart, audioOut.shape[0], nOutTok);

        // Placeholder sizes and the position of each token's last slot.
        var count = new long[b * s];
        var segOfToken = new int[b * s];
        int inSeg = 0, outSeg = 0;
        for (int k = 0; k < b * s; k++)
        {
            count[k] = 1;
            if (ids[k] == audioInTokenId)
            {
                if (featLen is not null || inLen is not null)
                    count[k] = (featLen?[inSeg] ?? 0) + (inLen?[inSeg] ?? 0);
                segOfToken[k] = inSeg++;
            }
            else if (ids[k] == audioOutTokenId)
            {
                if (outLen is not null) count[k] = outLen[outSeg];
                segOfToken[k] = outSeg++;
            }
        }
        var end = new long[b * s];
        long maxTotal = 0;
        for (int r = 0; r < b; r++)
        {
            long acc = 0;
            for (int i = 0; i < s; i++) { acc += count[r * s + i]; end[r * s + i] = acc - 1; }
            maxTotal = Math.Max(maxTotal, acc);
        }
        long l0 = (maxTotal + roundTo - 1) / roundTo * roundTo;
        if (leftPadding)
            for (int r = 0; r < b; r++)
            {
                long shift = l0 - 1 - end[r * s + s - 1];
                for (int i = 0; i < s; i++) end[r * s + i] += shift;
            }

        // Pool rows: 0 = zero row, then text embeddings, Whisper frames, audio-in codes, audio-out codes.
        long offText = 1, offFeat = offText + b * s;
        long featRows = features is null ? 0 : features.shape[0] * features.shape[1];
        long offIn = offFeat + featRows, offOut = offIn + (audioIn?.shape[0] ?? 0);
        var gather = new long[b * l0];
        var outIds = Enumerable.Repeat(padTokenId, (int)(b * l0)).ToArray();
        var outLab = Enumerable.Repeat(IgnoreIndex, (int)(b * l0)).ToArray();
        var outAtt = new long[b * l0];
        var mIn = new bool[b * l0];
        var mCodes = new bool[b * l0];
        var mOut = new bool[b * l0];
        long[] inStarts = audioIn is null ? Array.Empty<long>() : Starts(inLen!);
        long[] outStarts = audioOut is null ? Array.Empty<long>() : Starts(outLen!);
        for (int r = 0; r < b; r++)
            for (int i = 0; i < s; i++)
            {
                int k = (int)(r * s + i);
                long e = end[k];
                long row = r * l0;
                if (ids[k] == audioInTokenId && (featLen is not null || inLen is not null))
                {
                    int seg = segOfToken[k];
                    long codes = inLen?[seg] ?? 0, fl = featLen?[seg] ?? 0;
                    long startCodes = e - codes + 1;
                    for (long j = 0; j < codes; j++)
                    {
                        long p = row + startCodes + j;
                        gather[p] = offIn + inStarts[seg] + j; outIds[p] = audioInTokenId; outAtt[p] = 1; mIn[p] = true; mCodes[p] = true;
                    }
                    long startFeat = startCodes - fl;
                    for (long j = 0; j < fl; j++)
                    {
                        long p = row + startFeat + j;
                        gather[p] = offFeat + seg * features!.shape[1] + j; outIds[p] = audioInTokenId; outAtt[p] = 1; mIn[p] = true;
                    }
                }
                else if (ids[k] == audioOutTokenId && outLen is not null)
                {
                    int seg = segOfToken[k];
                    long start = e - outLen[seg] + 1;
                    for (long j = 0; j < outLen[seg]; j++)
                    {
                        long p = row + start + j;
                        gather[p] = offOut + outStarts[seg] + j; outIds[p] = audioOutTokenId; outAtt[p] = 1; mOut[p] = true;
                    }
                }
                else if (ids[k] != audioInTokenId && ids[k] != audioOutTokenId)
                {
                    long p = row + e;
                    gather[p] = offText + k; outIds[p] = ids[k]; outAtt[p] = att[k];
                    if (lab is not null) outLab[p] = lab[k];
                }
                // A placeholder with nothing to expand keeps its single slot: zero embedding, pad id, attention 0.
            }

        // Trim whole blocks of round_to columns that no row attends to.
        long lo = 0, hi = l0;
        var colUsed = new bool[l0];
        for (int r = 0; r < b; r++) for (long c = 0; c < l0; c++) if (outAtt[r * l0 + c] != 0) colUsed[c] = true;
        int first = Array.IndexOf(colUsed, true), last = Array.LastIndexOf(colUsed, true);
        if (first < 0) throw new InvalidDataException("the merged batch has no attended position (every attention_mask entry is 0)");
        if (leftPadding) lo = first / roundTo * roundTo;
        else hi = Math.Min(l0, ((long)last + 1 + roundTo - 1) / roundTo * roundTo);
        long len = hi - lo;

        T[] Cut<T>(T[] a)
        {
            var o = new T[b * len];
            for (int r = 0; r < b; r++) Array.Copy(a, r * l0 + lo, o, r * len, len);
            return o;
        }
        var g = Cut(gather);
        var attCut = Cut(outAtt);
        var pos = new long[b * len];
        for (int r = 0; r < b; r++)
        {
            long acc = 0;
            for (long c = 0; c < len; c++)
            {
                long a = attCut[r * len + c];
                acc += a;
                pos[r * len + c] = a == 0 ? 1 : acc - 1;
            }
        }

        var parts = new List<Tensor> { zeros(1, hdim, textEmbeds.dtype, dev), textEmbeds.reshape(b * s, hdim) };
        if (features is not null) parts.Add(features.reshape(-1, hdim).to_type(textEmbeds.dtype));
        if (audioIn is not null) parts.Add(audioIn.to_type(textEmbeds.dtype));
        if (audioOut is not null) parts.Add(audioOut.to_type(textEmbeds.dtype));
        var pool = cat(parts, 0);
        var embeds = pool.index_select(0, tensor(g, device: dev)).view(b, len, hdim);

        Tensor L(long[] a) => tensor(a, device: dev).view(b, len);
        Tensor M(bool[] a) => tensor(Cut(a), device: dev).view(b, len);
        return new MergedSequence(embeds, L(attCut), lab is null ? null : L(Cut(outLab)), L(pos), L(Cut(outIds)),
            M(mIn), M(mCodes), M(mOut));
    }

    private static long[] SegmentLengths(string what, Tensor? starts, long total, int placeholders)
    {
        if (starts is null) throw new InvalidDataException($"{what}_ids is given without {what}_ids_start");
        var st = starts.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        string tok = what == "audio_in" ? "<|AUDIO|>" : "<|AUDIO_OUT|>";
        if (st.Length != placeholders)
            throw new InvalidDataException($"{what}_ids_start has {st.Length} segments but input_ids has {placeholders} {tok} tokens");
        if (st.Length > 0 && st[0] != 0) throw new InvalidDataException($"{what}_ids_start must begin at 0, got {st[0]}");
        var len = new long[st.Length];
        for (int i = 0; i < st.Length; i++)
        {
            len[i] = (i + 1 < st.Length ? st[i + 1] : total) - st[i];
            if (len[i] < 0 || st[i] < 0 || st[i] > total)
                throw new InvalidDataException($"{what}_ids_start is not an increasing list of offsets within {total} columns (segment {i})");
        }
        return len;
    }

    private static long[] Starts(long[] lengths)
    {
        var s = new long[lengths.Length];
        for (int i = 1; i < lengths.Length; i++) s[i] = s[i - 1] + lengths[i - 1];
        return s;
    }
}
