using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench scalar-race`: calls ops that take an implicitly converted Scalar (x.pow(2), elu(x, 1.0)) in a loop
/// while another thread forces garbage collections and finalizers, to show whether a temporary Scalar can be
/// finalized while libtorch still reads it (TorchSharp passes scalar.Handle without keeping the Scalar alive).
/// </summary>
internal static class ScalarRace
{
    public static int Run(BenchArgs a)
    {
        int iterations = a.Int("iterations", 2_000_000);
        string op = a.Str("op", "pow");
        using var two = 2.ToScalar();
        using var x = randn(16);
        bool stop = false;
        var gc = new Thread(() => { while (!Volatile.Read(ref stop)) { GC.Collect(); GC.WaitForPendingFinalizers(); } });
        gc.Start();
        try
        {
            for (int i = 0; i < iterations; i++)
            {
                using var scope = NewDisposeScope();
                _ = op switch
                {
                    "pow" => x.pow(2),
                    "pow-held" => x.pow(two),          // a Scalar variable that outlives the call
                    "square" => x.square(),
                    "elu" => nn.functional.elu(x, 1.0),
                    "add" => x + 1e-5,
                    "mul" => x * 2.0,
                    _ => throw new ArgumentException($"unknown --op {op}"),
                };
                
            }
            Console.WriteLine($"scalar-race: {op}: {iterations} iterations without a failure");
        }
        finally { Volatile.Write(ref stop, true); gc.Join(); }
        return 0;
    }
}
