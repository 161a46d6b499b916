using HiggsCluster.Training.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// AdamW with torch.optim.AdamW's single-tensor update (decoupled decay, lerp'd first moment, bias corrections in
/// double, denom = sqrt(v)/sqrt(bc2) + eps). Owning the fp32 state tensors makes checkpoints exact: the moments and
/// the per-parameter step go to a safetensors file and come back bit-identical.
/// </summary>
public sealed class LoraAdamW
{
    private readonly List<(string Name, Parameter Param)> _params;
    private readonly Dictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> _state = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _steps = new(StringComparer.Ordinal);

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public IReadOnlyList<(string Name, Parameter Param)> Parameters => _params;

    public LoraAdamW(IEnumerable<(string Name, Parameter Param)> parameters, double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8, double weightDecay = 0.0)
    {
        _params = parameters.ToList();
        if (_params.Select(p => p.Name).Distinct(StringComparer.Ordinal).Count() != _params.Count)
            throw new ArgumentException("optimizer parameter names must be unique");
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in _params)
            if (p.grad is { } g) { g.detach_(); g.zero_(); }
    }

    /// <summary>One update with learning rate <paramref name="lr"/>; parameters without a gradient are left alone (as torch does).</summary>
    public void Step(double lr)
    {
        using var _ = no_grad();
        foreach (var (name, p) in _params)
        {
            var grad = p.grad;
            if (grad is null) continue;
            if (!_state.TryGetValue(name, out var s))
            {
                s = (zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
                _state[name] = s;
                _steps[name] = 0;
            }
            long step = ++_steps[name];
            p.MulInPlace(1 - lr * WeightDecay);
            s.ExpAvg.lerp_(grad, 1 - Beta1);
            s.ExpAvgSq.MulInPlace(Beta2).AddcmulInPlace(grad, grad, 1 - Beta2);
            double bc1 = 1 - Math.Pow(Beta1, step);
            double bc2 = 1 - Math.Pow(Beta2, step);
            double stepSize = lr / bc1;
            using var denom = s.ExpAvgSq.sqrt().Over(Math.Sqrt(bc2)).PlusInPlace(Eps);
            p.AddcdivInPlace(s.ExpAvg, denom, -stepSize);
        }
    }

    public long StepOf(string name) => _steps.GetValueOrDefault(name);

    /// <summary>exp_avg.&lt;name&gt;, exp_avg_sq.&lt;name&gt; and step.&lt;name&gt; (0-dim fp32, as torch keeps it).</summary>
    public void Save(string path)
    {
        var tensors = StateTensors();
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt", ["optimizer"] = "AdamW",
            ["betas"] = FormattableString.Invariant($"{Beta1:R},{Beta2:R}"),
            ["eps"] = Eps.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["weight_decay"] = WeightDecay.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        };
        if (File.Exists(path)) File.Delete(path);
        SafetensorsWriter.Write(path, tensors, meta);
    }

    /// <summary>The state as named CPU tensors (the names of <see cref="Save"/>); the caller owns them.</summary>
    public List<KeyValuePair<string, Tensor>> StateTensors()
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, _) in _params)
        {
            if (!_state.TryGetValue(name, out var s)) continue;
            tensors.Add(new("exp_avg." + name, s.ExpAvg.cpu().contiguous()));
            tensors.Add(new("exp_avg_sq." + name, s.ExpAvgSq.cpu().contiguous()));
            tensors.Add(new("step." + name, tensor((float)_steps[name])));
        }
        return tensors;
    }

    public void Load(string path)
    {
        using var f = new SafetensorsFile(path);
        LoadState(path, f.Names, n => f.Load(n, ScalarType.Float32));
    }

    /// <summary>Replaces the state with tensors named as by <see cref="StateTensors"/> (<paramref name="source"/> names them in errors).</summary>
    public void LoadState(string source, IReadOnlyDictionary<string, Tensor> tensors) =>
        LoadState(source, tensors.Keys, n => tensors[n].alias());

    private void LoadState(string path, IEnumerable<string> stored, Func<string, Tensor> load)
    {
        var names = stored.ToHashSet(StringComparer.Ordinal);
        var known = _params.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var n in names)
        {
            var dot = n.IndexOf('.');
            if (dot < 0 || !known.Contains(n[(dot + 1)..]))
                throw new InvalidDataException($"{path}: optimizer state '{n}' belongs to no LoRA parameter of this run");
        }
        foreach (var s in _state.Values) { s.ExpAvg.Dispose(); s.ExpAvgSq.Dispose(); }
        _state.Clear(); _steps.Clear();
        using var _ = no_grad();
        foreach (var (name, p) in _params)
        {
            bool has = names.Contains("exp_avg." + name);
            if (!has) continue;
            if (!names.Contains("exp_avg_sq." + name) || !names.Contains("step." + name))
                throw new InvalidDataException($"{path}: optimizer state of '{name}' is incomplete");
            var m = zeros_like(p).DetachFromDisposeScope();
            var v = zeros_like(p).DetachFromDisposeScope();
            using (var t = load("exp_avg." + name)) CheckAndCopy(path, name, m, t);
            using (var t = load("exp_avg_sq." + name)) CheckAndCopy(path, name, v, t);
            using (var t = load("step." + name)) _steps[name] = (long)t.item<float>();
            _state[name] = (m, v);
        }
    }

    private static void CheckAndCopy(string path, string name, Tensor dst, Tensor src)
    {
        if (!src.shape.SequenceEqual(dst.shape))
            throw new InvalidDataException($"{path}: optimizer state of '{name}' has shape [{string.Join(",", src.shape)}], the parameter [{string.Join(",", dst.shape)}]");
        dst.copy_(src);
    }
}

/// <summary>torch.nn.utils.clip_grad_norm_ (norm type 2, non-foreach): total = ‖(‖g_i‖)‖, scale by min(1, max/(total+1e-6)).</summary>
public static class GradClip
{
    /// <summary>Returns the total norm before clipping (NaN/Inf when a gradient is not finite; then nothing is scaled).</summary>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double? maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        var total = HeldScalars.VectorNorm(stack(grads.Select(g => HeldScalars.VectorNorm(g, 2)).ToList()), 2);
        double norm = total.item<float>();
        if (maxNorm is { } mx && double.IsFinite(norm))
        {
            var coef = HeldScalars.Into(mx, total.Plus(1e-6)).ClampMax(1.0);
            foreach (var g in grads) g.mul_(coef);
        }
        return norm;
    }
}
