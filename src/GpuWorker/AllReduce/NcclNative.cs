using System.Runtime.InteropServices;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>The opaque 128-byte id rank 0 creates and every rank passes to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NcclUniqueId
{
    public const int Size = 128;
    public fixed byte Internal[Size];

    public byte[] ToBytes()
    {
        var b = new byte[Size];
        fixed (byte* p = Internal) new ReadOnlySpan<byte>(p, Size).CopyTo(b);
        return b;
    }

    public static NcclUniqueId FromBytes(byte[] bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"an NCCL unique id has {Size} bytes, got {bytes.Length}");
        var id = new NcclUniqueId();
        bytes.CopyTo(new Span<byte>(id.Internal, Size));
        return id;
    }
}

/// <summary>P/Invoke surface of libnccl.so.2 (only what one flat-bucket all-reduce needs).</summary>
internal static unsafe partial class NcclNative
{
    public const string Library = "libnccl.so.2";
    public const int NcclFloat32 = 7;
    public const int NcclSum = 0;

    [DllImport(Library)] public static extern int ncclGetVersion(out int version);
    [DllImport(Library)] public static extern int ncclGetUniqueId(NcclUniqueId* uniqueId);
    [DllImport(Library)] public static extern int ncclCommInitRank(out IntPtr comm, int nranks, NcclUniqueId commId, int rank);
    [DllImport(Library)] public static extern int ncclAllReduce(IntPtr sendbuff, IntPtr recvbuff, nuint count, int datatype, int op, IntPtr comm, IntPtr stream);
    [DllImport(Library)] public static extern int ncclCommDestroy(IntPtr comm);
    [DllImport(Library)] public static extern int ncclCommAbort(IntPtr comm);
    [DllImport(Library)] public static extern IntPtr ncclGetErrorString(int result);

    public static void Check(int result, string call)
    {
        if (result != 0)
            throw new AllReduceException($"{call} failed: NCCL error {result} ({Marshal.PtrToStringAnsi(ncclGetErrorString(result))})");
    }
}
