using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using TorchSharp;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Manifest entries by id, built into collator samples on first use and kept (up to <paramref name="capacity"/>,
/// oldest dropped first; audio codes are also on disk in the code cache), and collated into micro-batches.
/// <paramref name="builderOf"/> picks the builder of an id when corpora of a mixed dataset have their own data roots.
/// </summary>
public sealed class SampleStore(IReadOnlyDictionary<long, ChatMLSample> entries, SampleBuilder builder, HiggsAudioCollator collator, int capacity = 4096,
                                Func<long, SampleBuilder>? builderOf = null)
{
    private readonly Dictionary<long, BuiltSample> _cache = new();
    private readonly Queue<long> _order = new();

    public IReadOnlyDictionary<long, ChatMLSample> Entries => entries;
    public HiggsAudioCollator Collator => collator;
    public SampleBuilder Builder => builder;

    public BuiltSample Get(long id)
    {
        if (_cache.TryGetValue(id, out var b)) return b;
        if (!entries.TryGetValue(id, out var entry)) throw new KeyNotFoundException($"sample id {id} is not in the manifest");
        using (var scope = torch.NewDisposeScope())
        {
            b = (builderOf?.Invoke(id) ?? builder).Build(id, entry);
            var s = b.Sample;
            foreach (var t in new[] { s.InputIds, s.LabelIds, s.AudioIdsConcat, s.AudioIdsStart, s.AudioWaveformsConcat, s.AudioWaveformsStart,
                                      s.AudioSampleRate, s.AudioSpeakerIndices, s.AudioLabelIdsConcat })
                t?.DetachFromDisposeScope();
        }
        _cache[id] = b; _order.Enqueue(id);
        while (_cache.Count > capacity && _order.Count > 0) Dispose(_cache[_order.Peek()].Sample, _order.Dequeue());
        return b;
    }

    private void Dispose(ChatMLDatasetSample s, long id)
    {
        _cache.Remove(id);
        foreach (var t in new[] { s.InputIds, s.LabelIds, s.AudioIdsConcat, s.AudioIdsStart, s.AudioWaveformsConcat, s.AudioWaveformsStart,
                                  s.AudioSampleRate, s.AudioSpeakerIndices, s.AudioLabelIdsConcat })
            t?.Dispose();
    }

    /// <summary>Builds every sample up front (what the dry run and small runs want: encoding outside the timed steps).</summary>
    public void Warm(IEnumerable<long> ids) { foreach (var id in ids) Get(id); }

    /// <summary>
    /// Collates in the caller's DisposeScope. The collator writes into a sample's labels (as upstream does, where every
    /// dataset read makes a new sample), so it gets fresh copies of the tensors it may change.
    /// </summary>
    public HiggsBatch Collate(IReadOnlyList<long> ids) => collator.Collate(ids.Select(id => Fresh(Get(id).Sample)).ToList());

    private static ChatMLDatasetSample Fresh(ChatMLDatasetSample s) => new()
    {
        Name = s.Name, InputIds = s.InputIds, LabelIds = s.LabelIds?.clone(), AudioIdsConcat = s.AudioIdsConcat.clone(),
        AudioIdsStart = s.AudioIdsStart, AudioWaveformsConcat = s.AudioWaveformsConcat, AudioWaveformsStart = s.AudioWaveformsStart,
        AudioSampleRate = s.AudioSampleRate, AudioSpeakerIndices = s.AudioSpeakerIndices, AudioLabelIdsConcat = s.AudioLabelIdsConcat?.clone(),
        Reward = s.Reward,
    };
}
