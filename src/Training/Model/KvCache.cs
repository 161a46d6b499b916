using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// One decoder layer's keys and values after RoPE, (1, Hkv, T, D). The buffers grow by doubling so a decode step
/// copies one row instead of re-concatenating the whole history.
/// </summary>
public sealed class KvLayer : IDisposable
{
    private const long InitialCapacity = 64;
    private readonly long _kvHeads, _headDim;
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private Tensor? _k, _v;

    public long Length { get; private set; }

    internal KvLayer(long kvHeads, long headDim, ScalarType dtype, Device device)
    {
        _kvHeads = kvHeads; _headDim = headDim; _dtype = dtype; _device = device;
    }

    /// <summary>Appends k, v (1, Hkv, L, D) and returns views of every cached key and value, the new ones included.</summary>
    public (Tensor K, Tensor V) Append(Tensor k, Tensor v)
    {
        long add = k.shape[2];
        Reserve(Length + add);
        using (no_grad())
        {
            _k!.narrow(2, Length, add).copy_(k);
            _v!.narrow(2, Length, add).copy_(v);
        }
        Length += add;
        return (_k.narrow(2, 0, Length), _v!.narrow(2, 0, Length));
    }

    /// <summary>
    /// Slots for positions a fast-forward layer skips (audio codes). They stay zero; the cache's code mask hides
    /// them from every query of such a layer, as in the full forward.
    /// </summary>
    public void AppendSkipped(long count)
    {
        Reserve(Length + count);
        Length += count;
    }

    private void Reserve(long need)
    {
        long cap = _k?.shape[2] ?? 0;
        if (need <= cap) return;
        long newCap = Math.Max(InitialCapacity, cap);
        while (newCap < need) newCap *= 2;
        // Fresh zeros, so skipped slots never hold stale values.
        var k = torch.zeros(new[] { 1, _kvHeads, newCap, _headDim }, _dtype, _device).DetachFromDisposeScope();
        var v = torch.zeros(new[] { 1, _kvHeads, newCap, _headDim }, _dtype, _device).DetachFromDisposeScope();
        if (_k is not null && Length > 0)
            using (no_grad())
            {
                k.narrow(2, 0, Length).copy_(_k.narrow(2, 0, Length));
                v.narrow(2, 0, Length).copy_(_v!.narrow(2, 0, Length));
            }
        _k?.Dispose(); _v?.Dispose();
        _k = k; _v = v;
    }

    public void Dispose()
    {
        _k?.Dispose(); _v?.Dispose();
        _k = _v = null;
        Length = 0;
    }
}

/// <summary>
/// The generation cache of one sequence (batch size 1): per layer K and V after RoPE, and per cached position
/// whether it is a real (attended) position and whether it holds discrete audio codes (audio-in codes or audio-out
/// columns), which fast-forward layers hide from text queries.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly KvLayer[] _layers;
    private readonly List<bool> _valid = new(), _codes = new();
    private bool _pending;

    /// <summary>Cached positions, padding included.</summary>
    public int Length => _valid.Count;
    /// <summary>RoPE position of the next appended position: the number of real positions so far.</summary>
    public long NextPosition { get; private set; }
    public IReadOnlyList<bool> Valid => _valid;
    public IReadOnlyList<bool> AudioCodes => _codes;
    public int NumLayers => _layers.Length;
    public ScalarType DType { get; }
    public Device Device { get; }

    public KvCache(HiggsAudioModel model)
    {
        var t = model.Config.Text;
        DType = model.DType; Device = model.Device;
        _layers = Enumerable.Range(0, t.NumHiddenLayers)
            .Select(_ => new KvLayer(t.NumKeyValueHeads, t.HeadDim, model.DType, model.Device)).ToArray();
    }

    public KvLayer Layer(int i) => _layers[i];

    /// <summary>
    /// Registers the rows of a step and returns the key masks over every cached position plus the new ones:
    /// (valid, valid and not audio codes), each (T) bool on the cache's device.
    /// </summary>
    internal (Tensor KeyValid, Tensor KeyText) Begin(bool[] valid, bool[] codes)
    {
        if (_pending) throw new InvalidOperationException("the KV cache is inconsistent: an earlier step failed part way; start a new cache");
        if (valid.Length != codes.Length) throw new ArgumentException("valid and codes masks differ in length");
        _pending = true;
        _valid.AddRange(valid); _codes.AddRange(codes);
        var v = torch.tensor(_valid.ToArray(), device: Device);
        var c = torch.tensor(_codes.ToArray(), device: Device);
        return (v, v & c.logical_not());
    }

    /// <summary>Closes a step once every layer has appended its rows.</summary>
    internal void Commit(long nextPosition)
    {
        foreach (var l in _layers)
            if (l.Length != Length) throw new InvalidOperationException($"a layer cached {l.Length} positions, the cache {Length}");
        NextPosition = nextPosition;
        _pending = false;
    }

    /// <summary>
    /// "May attend" mask (1,1,L,T) for the new rows at cache indices [T-L, T): causal over the cache and
    /// <paramref name="keyOk"/>; a row with no allowed key attends to itself, as <see cref="Attention.BuildMask"/> does.
    /// </summary>
    internal static Tensor StepMask(Tensor keyOk, long newRows)
    {
        long t = keyOk.shape[0], start = t - newRows;
        var dev = keyOk.device;
        var m = torch.ones(newRows, t, ScalarType.Bool, dev).tril(start) & keyOk.unsqueeze(0);
        var self = HeldScalars.Arange(t, device: dev).unsqueeze(0) == HeldScalars.Arange(newRows, device: dev).Plus(start).unsqueeze(1);
        m = m | (m.any(-1).logical_not().unsqueeze(1) & self);
        return m.view(1, 1, newRows, t);
    }

    public void Dispose()
    {
        foreach (var l in _layers) l.Dispose();
        _valid.Clear(); _codes.Clear();
        NextPosition = 0;
        _pending = false;
    }
}
