using TorchSharp;

namespace HiggsCluster.Training.Data;

/// <summary>What a pre-encoding pass did.</summary>
public sealed record EncodeSummary(long Entries, long Audios, IReadOnlyList<EntryProblem> Errors);

/// <summary>
/// Encodes every audio of a manifest (and every label audio) through a code source, usually the shared code cache,
/// so that training never waits for the audio tokenizer. Bad entries are reported and skipped.
/// </summary>
public static class ManifestEncoder
{
    public static EncodeSummary EncodeAll(string manifestPath, IAudioCodeSource codes, SampleBuilderOptions options,
                                          Action<long, long>? progress = null)
    {
        long total = ManifestReader.Read(manifestPath).LongCount();
        var segments = new AudioSegments(codes, options with { DataRoot = SampleBuilderOptions.RootFor(options.DataRoot, manifestPath) });
        var errors = new List<EntryProblem>();
        long entries = 0, audios = 0;
        foreach (var item in ManifestReader.Read(manifestPath))
        {
            entries++;
            if (item.Error is { } err) errors.Add(new EntryProblem(err.Index, err.Field, err.Message));
            else
            {
                try { audios += EncodeEntry(item.Index, item.Sample!, segments); }
                catch (SampleException e) { errors.Add(e.ToProblem()); }
                catch (Exception e) when (SampleException.IsPerEntry(e)) { errors.Add(SampleException.Wrap(item.Index, "messages", e).ToProblem()); }
            }
            progress?.Invoke(entries, total);
        }
        return new EncodeSummary(entries, audios, errors);
    }

    private static int EncodeEntry(long index, ChatMLSample sample, AudioSegments segments)
    {
        var fields = SampleBuilder.AudioFields(sample);
        int n = 0;
        using var scope = torch.NewDisposeScope();
        foreach (var content in sample.Messages.SelectMany(m => m.Content).OfType<AudioContent>())
        {
            var field = fields[n++];
            segments.Encode(index, segments.Resolve(index, field, content));
            if (content.LabelUrl is not null) segments.Encode(index, segments.ResolveLabel(index, field, content));
        }
        return n;
    }
}
