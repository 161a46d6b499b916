using System.Runtime.InteropServices;

namespace HiggsCluster.Bench.AudioTokenizer;

/// <summary>
/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID). With one libtorch thread this is the work an encode does,
/// unaffected by time the thread spends descheduled when other processes share the cores.
/// </summary>
public static class ThreadClock
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Sec; public long Nsec; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGettime(int clock, out Timespec ts);

    public static double Seconds()
    {
        if (ClockGettime(3, out var ts) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return ts.Sec + ts.Nsec * 1e-9;
    }
}
