using System.Diagnostics;
using System.Reflection;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// Full-size checkpoint I/O: streams a random bf16 Higgs Audio v2 checkpoint (released-model shapes) to sharded
/// safetensors without ever holding the model, then loads it with <see cref="ModelWeights.LoadModel(string, ScalarType, Device?)"/>
/// in a fresh child process so that the child's VmHWM is the loader's own peak resident memory.
/// </summary>
internal static class CheckpointBench
{
    /// <summary>bosonai/higgs-audio-v2-generation-3B-base shapes (model-spec §1.3): Llama-3.2-3B + dual FFN in all 28 layers.</summary>
    public static HiggsAudioConfig FullSize() => ReleasedShapes.Higgs3B();

    public static int Run(BenchArgs opts)
    {
        var dir = opts.Str("dir", Path.Combine(Path.GetTempPath(), "higgs-checkpoint-3b-" + Environment.ProcessId));
        long shardBytes = (long)(double.Parse(opts.Str("shard-gb", "5"), System.Globalization.CultureInfo.InvariantCulture) * 1e9);
        bool keep = opts.Int("keep", 0) != 0;
        try
        {
            var specs = Specs(FullSize());
            long total = specs.Sum(s => s.ByteLength);
            Console.WriteLine($"checkpoint-3b: {specs.Count} tensors, {specs.Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b)) / 1e9:F3} B parameters, {total / 1e9:F3} GB in bf16 -> {dir}");

            var sw = Stopwatch.StartNew();
            var gen = new Stopwatch();
            ModelWeights.WriteSharded(dir, FullSize(), specs, s =>
            {
                gen.Start();
                try { return Generate(s, specs); } finally { gen.Stop(); }
            }, shardBytes);
            double writeS = sw.Elapsed.TotalSeconds, genS = gen.Elapsed.TotalSeconds;
            long onDisk = 0;
            foreach (var f in Directory.EnumerateFiles(dir).OrderBy(f => f, StringComparer.Ordinal))
            {
                long len = new FileInfo(f).Length;
                onDisk += len;
                Console.WriteLine($"  {Path.GetFileName(f),-36} {len,15:N0} bytes");
            }
            var writer = Memory();
            Console.WriteLine($"write: {writeS:F1} s in all, of which {genS:F1} s generating random values and {writeS - genS:F1} s writing " +
                              $"({onDisk / 1e6 / Math.Max(1e-9, writeS - genS):F0} MB/s incl. fsync); writer peak RSS {writer.PeakKb / 1048576.0:F2} GiB");

            var child = RunChild("checkpoint-3b-load", "--dir", dir);
            if (child.Code != 0) { Console.Error.WriteLine(child.Output); return child.Code; }
            Console.Write(child.Output);
            var fields = child.Output.Split('\n').Where(l => l.StartsWith("load-peak-kb ", StringComparison.Ordinal)).Select(l => long.Parse(l[13..])).ToList();
            if (fields.Count == 1)
                Console.WriteLine($"ratio: loader peak RSS / checkpoint size = {fields[0] * 1024.0 / onDisk:F3}");
            return 0;
        }
        finally
        {
            if (!keep && Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Child side: load the checkpoint, check two tensors against their recipe, report time and memory.</summary>
    public static int Load(BenchArgs opts)
    {
        var dir = opts.Str("dir", "");
        var before = Memory();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        var model = ModelWeights.LoadModel(dir, ScalarType.BFloat16);
        double loadS = sw.Elapsed.TotalSeconds;
        double cpuS = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        var after = Memory();
        var specs = Specs(model.Config);
        var byName = model.BaseParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var name in new[] { "norm.weight", "layers.27.audio_mlp.down_proj.weight", "audio_codebook_embeddings.weight" })
        {
            using var scope = NewDisposeScope();
            var expected = Generate(specs.First(s => s.Name == name), specs);
            if (!expected.eq(byName[name]).all().item<bool>()) { Console.Error.WriteLine($"loaded '{name}' differs from what was written"); return 1; }
        }
        long bytes = model.BaseParameters().Sum(p => p.Param.NumberOfElements * p.Param.ElementSize);
        Console.WriteLine($"load: {loadS:F1} s wall, {cpuS:F1} s CPU ({bytes / 1e6 / loadS:F0} MB/s); RSS before load {before.RssKb / 1048576.0:F2} GiB, after {after.RssKb / 1048576.0:F2} GiB " +
                          $"(anon {after.AnonKb / 1048576.0:F2} GiB, file {after.FileKb / 1048576.0:F2} GiB), peak {after.PeakKb / 1048576.0:F2} GiB; spot-checked 3 tensors bit-exact");
        Console.WriteLine($"load-peak-kb {after.PeakKb}");
        return 0;
    }

    private static List<SafetensorsSpec> Specs(HiggsAudioConfig cfg)
    {
        // torch.empty parameters are never touched, so building the model for its names and shapes costs no memory.
        using var model = new HiggsAudioModel(cfg, ScalarType.BFloat16, CPU);
        return model.BaseParameters().Select(p => new SafetensorsSpec(p.Name, ScalarType.BFloat16, p.Param.shape))
            .OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>Deterministic per tensor (seeded by its sorted index): norms near 1, everything else N(0, 0.02), in fp32 then cast once.</summary>
    private static Tensor Generate(SafetensorsSpec s, List<SafetensorsSpec> all)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)(1000 + all.FindIndex(x => x.Name == s.Name)));
        bool norm = s.Name.EndsWith("norm.weight", StringComparison.Ordinal) || s.Name.Contains("layernorm", StringComparison.Ordinal);
        var v = randn(s.Shape, ScalarType.Float32, generator: g);
        v = norm ? v.mul_(0.1).add_(1) : v.mul_(0.02);
        return v.to_type(s.DType).MoveToOuterDisposeScope();
    }

    private readonly record struct Mem(long RssKb, long PeakKb, long AnonKb, long FileKb);

    private static Mem Memory()
    {
        long Get(string[] lines, string key) =>
            lines.Where(l => l.StartsWith(key + ":", StringComparison.Ordinal))
                 .Select(l => long.Parse(l[(key.Length + 1)..].Trim().Split(' ')[0])).FirstOrDefault();
        var lines = File.ReadAllLines("/proc/self/status");
        return new Mem(Get(lines, "VmRSS"), Get(lines, "VmHWM"), Get(lines, "RssAnon"), Get(lines, "RssFile"));
    }

    private static (int Code, string Output) RunChild(params string[] args)
    {
        var exe = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        // Under `dotnet higgs-bench.dll` the host is dotnet itself; pass the assembly along.
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(Assembly.GetExecutingAssembly().Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }
}
