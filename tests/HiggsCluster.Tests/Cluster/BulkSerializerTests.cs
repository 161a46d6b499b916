using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Hosting;
using Akka.Serialization;
using HiggsCluster.Messages;
using HiggsCluster.Messages.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class BulkSerializerTests
{
    internal static BatchDelivery SampleBatch(int frames = 37)
    {
        var rnd = new Random(5);
        var feats = new float[frames * 8];
        for (int i = 0; i < feats.Length; i++) feats[i] = (float)(rnd.NextDouble() * 2 - 1);
        feats[3] = float.NaN; feats[4] = float.NegativeInfinity; feats[5] = -0.0f; feats[6] = float.Epsilon;
        var ids = new long[] { 1, -2, long.MaxValue, 40 };
        return new BatchDelivery("run-ä", 42, 3, 1234567890123L, 2, 1, new long[] { 9, 8, 7 }, new[]
        {
            new NamedTensor("audio_in_ids", TensorData.FromFloats(feats, 8, frames)),
            new NamedTensor("input_ids", TensorData.FromLongs(ids, 2, 2)),
            new NamedTensor("mask", new TensorData(TensorDType.Bool, new long[] { 3 }, new byte[] { 1, 0, 1 })),
            new NamedTensor("empty", new TensorData(TensorDType.BFloat16, new long[] { 0, 4 }, Array.Empty<byte>())),
            new NamedTensor("scalar", new TensorData(TensorDType.Int32, Array.Empty<long>(), new byte[] { 1, 2, 3, 4 })),
        });
    }

    private static void AssertSame(BatchDelivery a, BatchDelivery b)
    {
        Assert.Equal((a.RunId, a.Generation, a.Epoch, a.Step, a.Rank, a.Micro), (b.RunId, b.Generation, b.Epoch, b.Step, b.Rank, b.Micro));
        Assert.Equal(a.SampleIds, b.SampleIds);
        Assert.Equal(a.Tensors.Length, b.Tensors.Length);
        for (int i = 0; i < a.Tensors.Length; i++)
        {
            Assert.Equal(a.Tensors[i].Name, b.Tensors[i].Name);
            Assert.True(a.Tensors[i].Tensor.SameAs(b.Tensors[i].Tensor), $"tensor {a.Tensors[i].Name} differs");
        }
    }

    [Fact]
    public void Batch_round_trips_bit_exactly_including_special_floats_and_empty_tensors()
    {
        var b = SampleBatch();
        var bytes = BulkSerializer.Encode(b);
        Assert.Equal(BulkSerializer.EncodedSize(b), bytes.Length);
        var back = (BatchDelivery)BulkSerializer.Decode(bytes, BulkSerializer.BatchManifest);
        AssertSame(b, back);
        Assert.True(float.IsNaN(back.Tensors[0].Tensor.AsFloats()[3]));
        Assert.True(float.IsNegative(back.Tensors[0].Tensor.AsFloats()[5]));
    }

    [Fact]
    public void Snapshot_and_bare_tensor_round_trip()
    {
        var snap = new TensorSnapshot("r", 17, SampleBatch().Tensors);
        var back = (TensorSnapshot)BulkSerializer.Decode(BulkSerializer.Encode(snap), BulkSerializer.SnapshotManifest);
        Assert.Equal(17, back.Step);
        for (int i = 0; i < snap.Tensors.Length; i++) Assert.True(snap.Tensors[i].Tensor.SameAs(back.Tensors[i].Tensor));
        var t = TensorData.FromFloats(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        Assert.True(t.SameAs((TensorData)BulkSerializer.Decode(BulkSerializer.Encode(t), BulkSerializer.TensorManifest)));
    }

    [Fact]
    public void Truncated_or_trailing_bytes_are_refused_with_offsets()
    {
        var bytes = BulkSerializer.Encode(SampleBatch());
        for (int cut = 0; cut < bytes.Length; cut += Math.Max(1, bytes.Length / 50))
        {
            var e = Assert.Throws<SerializationException>(() => BulkSerializer.Decode(bytes[..cut], BulkSerializer.BatchManifest));
            Assert.Contains("B1", e.Message);
        }
        var longer = bytes.Concat(new byte[] { 0 }).ToArray();
        Assert.Contains("trailing", Assert.Throws<SerializationException>(() => BulkSerializer.Decode(longer, BulkSerializer.BatchManifest)).Message);
        Assert.Throws<SerializationException>(() => BulkSerializer.Decode(bytes, "Z9"));
    }

    [Fact]
    public void Tensor_whose_bytes_do_not_match_its_shape_is_refused_naming_it()
    {
        var bad = new BatchDelivery("r", 0, 0, 0, 0, 0, Array.Empty<long>(), new[]
        {
            new NamedTensor("labels", new TensorData(TensorDType.Int64, new long[] { 3 }, new byte[8])),
        });
        var e = Assert.Throws<InvalidDataException>(() => BulkSerializer.Encode(bad));
        Assert.Contains("labels", e.Message);
    }

    [Fact]
    public async Task Akka_Hosting_binds_bulk_types_to_the_byte_serializer_and_control_messages_to_Hyperion()
    {
        using var host = new HostBuilder()
            .ConfigureServices(s => s.AddAkka("ser", b => b.AddHiggsSerializers()))
            .Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            var sys = host.Services.GetRequiredService<ActorSystem>();
            var batch = SampleBatch();
            var ser = sys.Serialization.FindSerializerFor(batch);
            Assert.IsType<BulkSerializer>(ser);
            Assert.IsType<BulkSerializer>(sys.Serialization.FindSerializerFor(batch.Tensors[0].Tensor));
            var manifest = Akka.Serialization.Serialization.ManifestFor(ser, batch);
            var back = (BatchDelivery)sys.Serialization.Deserialize(ser.ToBinary(batch), ser.Identifier, manifest);
            AssertSame(batch, back);

            var group = new AllReduceGroup("r", 4, new[] { new GroupMember(0, "w0", "127.0.0.1", 5000) }, new byte[] { 1, 2 })
                { Backend = AllReduceBackend.Nccl, Device = "cuda:2" };
            var hs = sys.Serialization.FindSerializerFor(group);
            Assert.IsType<HyperionSerializer>(hs);
            var g2 = (AllReduceGroup)sys.Serialization.Deserialize(hs.ToBinary(group), hs.Identifier, Akka.Serialization.Serialization.ManifestFor(hs, group));
            Assert.Equal(group.Peers[0], g2.Peers[0]);
            Assert.Equal(group.NcclUniqueId, g2.NcclUniqueId);
            Assert.Equal((AllReduceBackend.Nccl, "cuda:2"), (g2.Backend, g2.Device));
            var id = new NcclIdCreated("r", 4, Enumerable.Range(0, 128).Select(i => (byte)(i * 7)).ToArray());
            var hid = sys.Serialization.FindSerializerFor(id);
            Assert.IsType<HyperionSerializer>(hid);
            var id2 = (NcclIdCreated)sys.Serialization.Deserialize(hid.ToBinary(id), hid.Identifier, Akka.Serialization.Serialization.ManifestFor(hid, id));
            Assert.Equal((id.RunId, id.Generation), (id2.RunId, id2.Generation));
            Assert.Equal(id.Id, id2.Id);
            Assert.IsType<HyperionSerializer>(sys.Serialization.FindSerializerFor(new SubmitRun(ToyCluster.Spec("r"))));
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
