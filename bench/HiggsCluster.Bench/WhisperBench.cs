using System.Diagnostics;
using HiggsCluster.Training;
using HiggsCluster.Training.Audio;

namespace HiggsCluster.Bench;

/// <summary>Whisper features of the same synthetic clips in the C# port and in bench/whisper_numpy.py.</summary>
internal static class WhisperBench
{
    public static int Run(BenchArgs a)
    {
        int count = a.Int("clips", 16), repeat = a.Int("repeat", 5), batch = a.Int("batch", 8);
        var python = a.Str("python", "/usr/bin/python3");
        // like for like: both sides get the same number of threads (libtorch intra-op, OpenBLAS)
        int threads = a.Int("threads", 1);
        TorchSharp.torch.set_num_threads(threads);
        var clips = MakeClips(count, seed: 0);
        double seconds = clips.Sum(c => c.Length) / 16000.0;
        Console.WriteLine($"whisper: {count} clips, {seconds / count:F1} s mean length, {repeat} passes per side, batched calls of {batch}, {threads} thread(s) each side");

        using var fe = new WhisperFeatureExtractor();
        var passesBatched = Timing.Samples(repeat, () =>
        {
            for (int i = 0; i < count; i += batch)
                fe.Extract(clips.Skip(i).Take(batch).ToList()).Dispose();
        });
        var passesSingle = Timing.Samples(repeat, () =>
        {
            foreach (var c in clips) fe.Extract(c).Dispose();
        });
        double torchBatched = count / passesBatched.Min(), torchSingle = count / passesSingle.Min();
        Console.WriteLine($"torchsharp clips/s {torchBatched:F2} (batched)  {torchSingle:F2} (one clip per call)");

        var dir = Directory.CreateTempSubdirectory("higgs-bench-");
        try
        {
            var clipsFile = Path.Combine(dir.FullName, "clips.bin");
            WriteClips(clipsFile, clips);
            var firstFile = Path.Combine(dir.FullName, "first.f32");
            using (var f = fe.Extract(clips[0]))
                File.WriteAllBytes(firstFile, f.InputFeatures[0].contiguous().bytes.ToArray());
            var script = Path.Combine(RepoPaths.Root, "bench", "whisper_numpy.py");
            var (rc, output) = RunPython(python, script, clipsFile, repeat, firstFile, threads);
            Console.Write(output);
            if (rc != 0) { Console.Error.WriteLine($"numpy benchmark failed (exit {rc})"); return 1; }
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("numpy clips/s ", StringComparison.Ordinal));
            if (line is null) { Console.Error.WriteLine("numpy benchmark printed no clips/s"); return 1; }
            double numpy = double.Parse(line["numpy clips/s ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Console.WriteLine($"ratio torchsharp/numpy {torchBatched / numpy:F2}x (batched)  {torchSingle / numpy:F2}x (one clip per call)  target >= 5x");
            var passLine = output.Split('\n').FirstOrDefault(l => l.StartsWith("numpy pass seconds ", StringComparison.Ordinal));
            if (passLine is not null)
            {
                var numpyPasses = passLine["numpy pass seconds ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                    .Select(x => double.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToList();
                var rate = (List<double> p) => p.Select(t => count / t).ToList();
                Console.WriteLine(Stats.Line("whisper_ours_batched_clips_per_s", rate(passesBatched), "clips/s"));
                Console.WriteLine(Stats.Line("whisper_ours_single_clips_per_s", rate(passesSingle), "clips/s"));
                Console.WriteLine(Stats.Line("whisper_numpy_clips_per_s", rate(numpyPasses), "clips/s"));
                Console.WriteLine(System.FormattableString.Invariant(
                    $"RESULT whisper_ratio ours/numpy={Stats.Median(passesSingle.Select(t => count / t).ToList()) / Stats.Median(rate(numpyPasses)):F2} one clip per call, {Stats.Median(rate(passesBatched)) / Stats.Median(rate(numpyPasses)):F2} batched (median clips/s; target >= 5)"));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
        return 0;
    }

    /// <summary>Speech-like lengths (2-20 s): two gliding tones under an envelope plus noise.</summary>
    private static List<float[]> MakeClips(int count, int seed)
    {
        var rng = new Random(seed);
        var clips = new List<float[]>();
        for (int c = 0; c < count; c++)
        {
            int n = rng.Next(2 * 16000, 20 * 16000);
            double f1 = 120 + 200 * rng.NextDouble(), f2 = 900 + 2000 * rng.NextDouble(), amp = 0.05 + 0.5 * rng.NextDouble();
            var x = new float[n];
            for (int i = 0; i < n; i++)
            {
                double t = i / 16000.0, env = 0.5 + 0.5 * Math.Sin(2 * Math.PI * 3 * t);
                x[i] = (float)(amp * env * (Math.Sin(2 * Math.PI * f1 * t * (1 + 0.05 * t)) + 0.3 * Math.Sin(2 * Math.PI * f2 * t))
                               + 0.01 * (rng.NextDouble() - 0.5));
            }
            clips.Add(x);
        }
        return clips;
    }

    private static void WriteClips(string path, List<float[]> clips)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write(clips.Count);
        foreach (var c in clips) w.Write(c.Length);
        foreach (var c in clips)
            foreach (var v in c) w.Write(v);
    }

    private static (int Rc, string Output) RunPython(string python, string script, string clips, int repeat, string first, int threads)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { script, clips, repeat.ToString(System.Globalization.CultureInfo.InvariantCulture), first })
            psi.ArgumentList.Add(arg);
        // These tuning variables slow a current OpenBLAS; the numpy baseline runs without them (this call only).
        psi.Environment.Remove("OPENBLAS_CORETYPE");
        psi.Environment.Remove("OPENBLAS_L2_SIZE");
        psi.Environment["OPENBLAS_NUM_THREADS"] = threads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["OMP_NUM_THREADS"] = threads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {python}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
