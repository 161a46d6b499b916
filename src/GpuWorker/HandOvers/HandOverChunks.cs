using System.Collections.Immutable;
using HiggsCluster.Messages;

namespace HiggsCluster.GpuWorker.HandOvers;

/// <summary>
/// A worker's committed state (named tensors) cut into <see cref="TensorSnapshot"/> messages that each stay well under
/// the remoting frame. Every chunk carries a header tensor [generation, index, count]; a tensor larger than the budget
/// travels as byte pieces with a shape header and is glued back on arrival.
/// </summary>
public static class HandOverChunks
{
    public const string Header = "higgs.chunk";
    private const string PieceMark = "@piece";
    private const string ShapeMark = "@shape";
    public const long DefaultBudget = 8L * 1024 * 1024;

    public static IReadOnlyList<TensorSnapshot> Split(string runId, long step, long generation, IReadOnlyList<NamedTensor> state, long budget = DefaultBudget)
    {
        if (budget < 1024) throw new ArgumentOutOfRangeException(nameof(budget), budget, "chunk budget below 1 KiB");
        var pieces = new List<NamedTensor>();
        foreach (var t in state)
        {
            if (t.Name.Contains('@') || t.Name == Header) throw new ArgumentException($"state tensor name '{t.Name}' is reserved");
            if (t.Tensor.Data.LongLength <= budget) { pieces.Add(t); continue; }
            var shape = new long[] { (long)t.Tensor.DType }.Concat(t.Tensor.Shape).ToArray();
            pieces.Add(new NamedTensor(t.Name + ShapeMark, TensorData.FromLongs(shape, shape.Length)));
            int n = (int)((t.Tensor.Data.LongLength + budget - 1) / budget);
            for (int i = 0; i < n; i++)
            {
                long at = i * budget, len = Math.Min(budget, t.Tensor.Data.LongLength - at);
                pieces.Add(new NamedTensor($"{t.Name}{PieceMark}{i}", new TensorData(TensorDType.UInt8, new[] { len }, t.Tensor.Data.AsSpan((int)at, (int)len).ToArray())));
            }
        }
        var chunks = new List<List<NamedTensor>> { new() };
        long used = 0;
        foreach (var p in pieces)
        {
            if (used > 0 && used + p.Tensor.Data.LongLength > budget) { chunks.Add(new()); used = 0; }
            chunks[^1].Add(p);
            used += p.Tensor.Data.LongLength;
        }
        return chunks.Select((c, i) => new TensorSnapshot(runId, step,
            c.Prepend(new NamedTensor(Header, TensorData.FromLongs(new[] { generation, i, chunks.Count }, 3))).ToArray())).ToList();
    }

    /// <summary>(generation, index, count) of a chunk made by <see cref="Split"/>.</summary>
    public static (long Generation, int Index, int Count) HeaderOf(TensorSnapshot s)
    {
        var h = s.Tensors.FirstOrDefault(t => t.Name == Header)
            ?? throw new InvalidDataException($"state chunk of run {s.RunId} step {s.Step} has no '{Header}' tensor");
        var v = h.Tensor.AsLongs();
        if (v.Length != 3 || v[2] <= 0 || v[1] < 0 || v[1] >= v[2])
            throw new InvalidDataException($"state chunk of run {s.RunId} step {s.Step}: bad header [{string.Join(',', v.ToArray())}]");
        return (v[0], (int)v[1], (int)v[2]);
    }

    /// <summary>The tensors of a complete set of chunks, pieces glued back, in the sender's order.</summary>
    public static NamedTensor[] Join(IEnumerable<TensorSnapshot> chunks)
    {
        var flat = chunks.OrderBy(c => HeaderOf(c).Index).SelectMany(c => c.Tensors.Where(t => t.Name != Header)).ToList();
        var result = new List<NamedTensor>();
        for (int i = 0; i < flat.Count; i++)
        {
            var t = flat[i];
            if (!t.Name.EndsWith(ShapeMark, StringComparison.Ordinal)) { result.Add(t); continue; }
            var name = t.Name[..^ShapeMark.Length];
            var head = t.Tensor.AsLongs().ToArray();
            var bytes = new List<byte>();
            for (int k = 0; i + 1 < flat.Count && flat[i + 1].Name == $"{name}{PieceMark}{k}"; k++, i++) bytes.AddRange(flat[i + 1].Tensor.Data);
            var data = new TensorData((TensorDType)head[0], head[1..], bytes.ToArray());
            data.Validate(name);
            result.Add(new NamedTensor(name, data));
        }
        return result.ToArray();
    }
}

/// <summary>
/// Chunks of one hand-over arriving at a newcomer (pure). Chunks of an older generation or another step than the one
/// being assembled are dropped; a newer one restarts the assembly.
/// </summary>
public sealed record HandOverAssembly(string RunId, long Step, long Generation, int Count, ImmutableSortedDictionary<int, TensorSnapshot> Got)
{
    public static HandOverAssembly? Empty => null;

    /// <summary>Adds a chunk; returns the new assembly and, when it completed, the joined tensors.</summary>
    public static (HandOverAssembly? Next, NamedTensor[]? Complete) Add(HandOverAssembly? current, TensorSnapshot chunk)
    {
        var (gen, index, count) = HandOverChunks.HeaderOf(chunk);
        var a = current;
        if (a is null || a.RunId != chunk.RunId || a.Step != chunk.Step || gen > a.Generation)
        {
            if (a is not null && a.RunId == chunk.RunId && gen < a.Generation) return (a, null); // a late chunk of an abandoned hand-over
            a = new HandOverAssembly(chunk.RunId, chunk.Step, gen, count, ImmutableSortedDictionary<int, TensorSnapshot>.Empty);
        }
        else if (gen < a.Generation) return (a, null);
        if (count != a.Count) throw new InvalidDataException($"state chunk {index} of run {chunk.RunId} step {chunk.Step} says {count} chunks, earlier ones {a.Count}");
        a = a with { Got = a.Got.SetItem(index, chunk) };
        return a.Got.Count == a.Count ? (null, HandOverChunks.Join(a.Got.Values)) : (a, null);
    }
}
