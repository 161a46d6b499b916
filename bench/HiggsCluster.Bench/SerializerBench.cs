using Akka.Actor;
using Akka.Serialization;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Serialization;

namespace HiggsCluster.Bench;

/// <summary>The same batch through our byte serializer and through Hyperion, plus Hyperion on a raw float[] record.</summary>
internal static class SerializerBench
{
    public sealed record FloatRecord(long Seq, int[] Shape, float[] Features, long[] Labels);

    public static int Run(BenchArgs opts)
    {
        int mib = opts.Int("mib", 4), repeat = opts.Int("repeat", 10);
        int n = mib * 1024 * 1024 / 4;
        var feats = new float[n];
        var rnd = new Random(1);
        for (int i = 0; i < n; i++) feats[i] = (float)rnd.NextDouble();
        var labels = new long[128];
        var batch = new BatchDelivery("bench", 0, 0, 1, 0, 0, new long[] { 1, 2, 3 },
            new[] { new NamedTensor("features", TensorData.FromFloats(feats, n)), new NamedTensor("labels", TensorData.FromLongs(labels, 128)) });
        var floatRecord = new FloatRecord(1, new[] { n }, feats, labels);

        using var sys = ActorSystem.Create("bench");
        var ext = (ExtendedActorSystem)sys;
        var bulk = new BulkSerializer(ext);
        var hyperion = new HyperionSerializer(ext);

        Report("byte serializer, batch", batch.GetType(), repeat, o => bulk.ToBinary(o), (b, t) => bulk.FromBinary(b, BulkSerializer.BatchManifest), batch);
        Report("Hyperion, same batch (byte[] fields)", batch.GetType(), repeat, o => hyperion.ToBinary(o), (b, t) => hyperion.FromBinary(b, t), batch);
        Report("Hyperion, record with float[]", floatRecord.GetType(), repeat, o => hyperion.ToBinary(o), (b, t) => hyperion.FromBinary(b, t), floatRecord);
        return 0;
    }

    private static void Report(string what, Type type, int repeat, Func<object, byte[]> ser, Func<byte[], Type, object> de, object msg)
    {
        byte[] bytes = ser(msg);
        double s = Timing.Best(repeat, () => bytes = ser(msg));
        double d = Timing.Best(repeat, () => de(bytes, type));
        double mb = bytes.Length / 1e6;
        Console.WriteLine($"{what,-40} {bytes.Length,10} B   serialize {mb / s,8:F0} MB/s   deserialize {mb / d,8:F0} MB/s");
    }
}
