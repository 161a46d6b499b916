using HiggsCluster.Training.Collation;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// A prompt plus the tokens and audio columns decoded after it, written back as the one-sample
/// <see cref="HiggsBatch"/> the training forward reads, so <see cref="HiggsAudioModel.Recompute"/> sees exactly the
/// sequence the KV cache holds. Each maximal run of decoded columns is one audio-out segment: one
/// <c>AudioOutTokenIdx</c> placeholder in input_ids, its columns appended to audio_out_ids, its first column's index
/// in audio_out_ids_start. The prompt's own fields (audio-in codes, Whisper features, earlier audio-out segments)
/// are kept, copied.
/// </summary>
public sealed class StepTranscript
{
    private readonly HiggsAudioConfig _cfg;
    private readonly HiggsBatch _prompt;
    private readonly List<long> _ids, _att;
    private readonly List<long[]> _columns = new();
    private readonly List<long> _starts = new();
    private readonly long _promptColumns;
    private bool _inAudio;

    public StepTranscript(HiggsAudioConfig cfg, HiggsBatch prompt)
    {
        if (prompt.InputIds.shape[0] != 1) throw new ArgumentException("a transcript holds one sample");
        _cfg = cfg; _prompt = prompt;
        _ids = prompt.InputIds.cpu().to_type(ScalarType.Int64).data<long>().ToList();
        _att = prompt.AttentionMask.cpu().to_type(ScalarType.Int64).data<long>().ToList();
        _promptColumns = prompt.AudioOutIds is { } ao ? ao.shape[^1] : 0;
    }

    public void AddText(long tokenId)
    {
        _ids.Add(tokenId); _att.Add(1);
        _inAudio = false;
    }

    public void AddAudio(long[] column)
    {
        if (column.Length != _cfg.AudioNumCodebooks) throw new ArgumentException($"an audio column has {_cfg.AudioNumCodebooks} codes, got {column.Length}");
        if (!_inAudio)
        {
            _ids.Add(_cfg.AudioOutTokenIdx); _att.Add(1);
            _starts.Add(_promptColumns + _columns.Count);
        }
        _columns.Add((long[])column.Clone());
        _inAudio = true;
    }

    public HiggsBatch ToBatch()
    {
        int k = _cfg.AudioNumCodebooks, n = _columns.Count;
        var flat = new long[k * n];
        for (int c = 0; c < k; c++) for (int j = 0; j < n; j++) flat[c * n + j] = _columns[j][c];
        var fresh = tensor(flat).view(k, n);
        Tensor? outIds = _prompt.AudioOutIds is { } ao ? cat(new[] { ao.cpu().to_type(ScalarType.Int64), fresh }, 1) : n > 0 ? fresh : null;
        var starts = (_prompt.AudioOutIdsStart?.cpu().to_type(ScalarType.Int64).data<long>().ToArray() ?? Array.Empty<long>()).Concat(_starts).ToArray();
        return new HiggsBatch
        {
            InputIds = tensor(_ids.ToArray()).view(1, _ids.Count),
            AttentionMask = tensor(_att.ToArray()).view(1, _att.Count),
            AudioFeatures = _prompt.AudioFeatures?.clone(),
            AudioFeatureAttentionMask = _prompt.AudioFeatureAttentionMask?.clone(),
            AudioInIds = _prompt.AudioInIds?.clone(),
            AudioInIdsStart = _prompt.AudioInIdsStart?.clone(),
            AudioOutIds = outIds,
            AudioOutIdsStart = outIds is null ? null : tensor(starts),
        };
    }
}
