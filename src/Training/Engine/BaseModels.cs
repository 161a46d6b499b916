using System.Collections.Concurrent;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Base weights read from disk once per process: a process that builds several models of one base (the in-process
/// cluster: the session that checks the run, then one model per worker, and again when a worker restarts from the
/// initial adapter) keeps one host copy and copies it into each new model, bit for bit what a load would give.
/// Counts every read from disk per base folder, so a test can hold the process to one.
/// </summary>
public sealed class BaseModels : IDisposable
{
    private static readonly ConcurrentDictionary<string, int> Reads = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Dir, ScalarType DType), HiggsAudioModel> _templates = new();
    private readonly object _lock = new();

    /// <summary>How often this process has read the base weights in <paramref name="dir"/> from disk.</summary>
    public static int DiskReads(string dir) => Reads.TryGetValue(Path.GetFullPath(dir), out var n) ? n : 0;

    /// <summary>The one way a base is read from disk (counted).</summary>
    public static HiggsAudioModel Read(string dir, ScalarType dtype, Device device)
    {
        Reads.AddOrUpdate(Path.GetFullPath(dir), 1, (_, n) => n + 1);
        return ModelWeights.LoadModel(dir, dtype, device);
    }

    /// <summary>
    /// A model of the base in <paramref name="dir"/>: the first read from disk into a host copy kept here, every one a
    /// fresh model (LoRA attaches into it) with the host copy's weights. The global RNG is left as one construction
    /// after <paramref name="seed"/> leaves it, as a plain load does.
    /// </summary>
    public HiggsAudioModel Copy(string dir, ScalarType dtype, Device device, long seed)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key = (Path.GetFullPath(dir), dtype);
            if (!_templates.TryGetValue(key, out var template)) _templates[key] = template = Read(dir, dtype, CPU);
            torch.manual_seed(seed);
            var model = new HiggsAudioModel(template.Config, dtype, device);
            var source = template.BaseParameters().ToDictionary(p => p.Name, p => p.Param, StringComparer.Ordinal);
            using (no_grad())
                foreach (var (name, p) in model.BaseParameters()) p.copy_(source[name]);
            return model;
        }
    }

    private bool _disposed;

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var t in _templates.Values) t.Dispose();
            _templates.Clear();
            _disposed = true;
        }
    }
}
