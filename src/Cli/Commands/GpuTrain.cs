using System.Diagnostics;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Engine;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs train --gpus all|N|0,3,5` (or <c>train.devices</c>): the run's cluster in this process (coordinator and a
/// loader) and one worker process per GPU, NCCL between them when every worker has it, the TCP ring otherwise.
/// </summary>
public static class GpuTrain
{
    /// <summary>
    /// The <c>CUDA_VISIBLE_DEVICES</c> value of each worker, in rank order, and the device the workers train on; every
    /// refusal is one line naming what to change. <paramref name="backend"/> is this build's libtorch backend.
    /// </summary>
    public static (IReadOnlyList<string> Gpus, string Device) Choose(string selection, TrainOptions o, string backend,
        Func<string, string?>? env = null, Func<IReadOnlyList<string>>? nvidiaSmi = null, Func<int>? cudaDevices = null)
    {
        GpuSelection sel;
        try { sel = GpuSelection.Parse(selection); }
        catch (FormatException e) { throw new CliUsageException($"--gpus: {e.Message}"); }
        bool injected = GpuSelection.Injected(env);
        if (!injected && backend != "cuda" && (cudaDevices ?? TorchDevices.VisibleCudaDevices)() == 0)
            throw new CliUsageException("--gpus needs a CUDA build of higgs: run with HIGGS_TORCH_BACKEND=cuda (./higgs rebuilds), or drop --gpus to train in this process");
        if (!injected && !TorchDevices.IsCuda(o.Device))
            throw new CliUsageException($"--gpus trains on GPUs, but model.device is '{o.Device}': set model.device: cuda");
        IReadOnlyList<string> gpus;
        try { gpus = sel.Pick(GpuSelection.Visible(env, nvidiaSmi)); }
        catch (FormatException e) { throw new CliUsageException($"--gpus {selection}: {e.Message}"); }
        // each worker process sees only its own GPU, as cuda:0
        return (gpus, TorchDevices.IsCuda(o.Device) ? "cuda" : o.Device);
    }

    public static int Execute(TrainOptions options, IReadOnlyList<string> gpus, string? resume, bool dryRunOnly, TextWriter stdout, TextWriter stderr)
    {
        if (options.Ranks == 1 && gpus.Count > 1)
        {
            // one plan rank would leave every GPU but one idle: one rank per GPU, as torchrun's world size
            options.Ranks = gpus.Count;
            stdout.WriteLine($"train: train.ranks: {gpus.Count} (one plan rank per GPU; set train.ranks for another global batch)");
        }
        else if (options.Ranks < gpus.Count)
            stderr.WriteLine($"warning: {gpus.Count} GPUs for {options.Ranks} plan rank(s) (train.ranks): {gpus.Count - options.Ranks} will be idle; set train.ranks: {gpus.Count}");
        // the dry run loads the model on the first GPU in a process of its own: this process must not keep a CUDA
        // context and a cache of freed blocks on a GPU that a worker is about to fill
        int rc = DryRunProcess(options, gpus[0], stdout, stderr);
        if (rc != 0 || dryRunOnly) return rc;
        stdout.WriteLine($"train: coordinator and a loader in this process, {gpus.Count} worker process(es), one per GPU ({options.Ranks} plan rank(s))");
        var progress = SpectreProgress.For(options.Progress, stdout, options.LogSteps);
        TrainingOutcome r;
        try { r = Node.InProcessCluster.Train(options, gpus.Count, progress, resume, gpus: gpus, log: stdout); }
        catch (Node.ClusterRunFailedException e) { stderr.WriteLine("higgs: " + e.Message); return 1; }
        catch (IOException e) when (resume is not null) { throw new CliUsageException($"--resume: {e.Message}"); }
        return TrainCommand.Report(r, stdout);
    }

    private static int DryRunProcess(TrainOptions o, string gpu, TextWriter stdout, TextWriter stderr)
    {
        var (dotnet, dll) = Node.GpuWorkerProcesses.Self();
        var psi = new ProcessStartInfo(dotnet) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, "train", "--engine", "--dry-run" }) psi.ArgumentList.Add(a);
        var abs = Planning.RunOptionKeys.Resolved(Node.RunSpecFactory.From(o, "dry-run").Options);
        foreach (var (k, v) in abs.Where(kv => kv.Key != "train.devices")) psi.ArgumentList.Add($"--{k}={v}");
        psi.Environment["CUDA_VISIBLE_DEVICES"] = gpu;
        psi.Environment.Remove("HIGGS_GPU_LIST");
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith(TrainConfig.EnvPrefix + "TRAIN__DEVICES", StringComparison.Ordinal)).ToList()) psi.Environment.Remove(k);
        using var p = Process.Start(psi) ?? throw new CliUsageException("the dry-run process did not start");
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.WaitForExit();
        return p.ExitCode;
    }
}
