using HiggsCluster.Coordinator.Groups;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The pure pieces of backend selection: the coordinator's choice and id hand-out, the worker's group formation.</summary>
[Trait("Category", "Cluster")]
public class AllReduceBackendTests
{
    [Theory]
    [InlineData("cuda")]
    [InlineData("cuda:0")]
    [InlineData("cuda:3")]
    public void Every_rank_with_cuda_on_a_cuda_run_uses_nccl(string device)
    {
        Assert.Equal(AllReduceBackend.Nccl, BackendChoice.Choose(device, new[] { true, true, true }).Backend);
        Assert.Equal(AllReduceBackend.Nccl, BackendChoice.Choose(device, new[] { true }).Backend);
    }

    [Fact]
    public void One_rank_without_cuda_puts_the_group_on_the_ring_and_says_which()
    {
        var c = BackendChoice.Choose("cuda", new[] { true, false, true });
        Assert.Equal(AllReduceBackend.TcpRing, c.Backend);
        Assert.Contains("rank(s) 1 of 3", c.Reason);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData(null)]
    [InlineData("cudax")]
    public void A_run_off_cuda_uses_the_ring_even_when_every_rank_has_cuda(string? device) =>
        Assert.Equal(AllReduceBackend.TcpRing, BackendChoice.Choose(device, new[] { true, true }).Backend);

    [Fact]
    public void An_empty_group_uses_the_ring() =>
        Assert.Equal(AllReduceBackend.TcpRing, BackendChoice.Choose("cuda", Array.Empty<bool>()).Backend);

    private static readonly byte[] IdA = Enumerable.Range(0, 128).Select(i => (byte)i).ToArray();
    private static readonly byte[] IdB = Enumerable.Range(0, 128).Select(i => (byte)(255 - i)).ToArray();

    [Fact]
    public void The_coordinator_hands_out_the_first_id_of_the_current_nccl_generation_only()
    {
        var current = new NcclIdHandout(7, AllReduceBackend.Nccl, null);
        var ok = NcclIdHandout.Accept(current, new NcclIdCreated("r", 7, IdA));
        Assert.True(ok.Broadcast);
        Assert.Equal(IdA, ok.State!.Id);

        Assert.False(NcclIdHandout.Accept(ok.State, new NcclIdCreated("r", 7, IdB)).Broadcast); // already has one
        var stale = NcclIdHandout.Accept(current, new NcclIdCreated("r", 6, IdA));
        Assert.False(stale.Broadcast);
        Assert.Contains("stale", stale.Ignored);
        Assert.False(NcclIdHandout.Accept(current with { Backend = AllReduceBackend.TcpRing }, new NcclIdCreated("r", 7, IdA)).Broadcast);
        Assert.False(NcclIdHandout.Accept(null, new NcclIdCreated("r", 7, IdA)).Broadcast);
        Assert.False(NcclIdHandout.Accept(current, new NcclIdCreated("r", 7, Array.Empty<byte>())).Broadcast);
    }

    private static GroupMember[] Peers(params string[] ids) => ids.Select((w, i) => new GroupMember(i, w, "127.0.0.1", 5000 + i)).ToArray();

    private static AllReduceGroup Nccl(long gen, byte[]? id, params string[] workers) =>
        new("r", gen, Peers(workers), id) { Backend = AllReduceBackend.Nccl, Device = "cuda:1" };

    [Fact]
    public void Rank_0_alone_creates_the_id_and_every_rank_joins_once_the_id_comes()
    {
        var (s0, new0, fx0) = GroupFormation.None.Handle(Nccl(3, null, "a", "b"), "a");
        var (s1, new1, fx1) = GroupFormation.None.Handle(Nccl(3, null, "a", "b"), "b");
        Assert.True(new0 && new1);
        Assert.Equal(new FormationEffect[] { new AbortCommunicator(), new CreateNcclId("r", 3) }, fx0);
        Assert.Equal(new FormationEffect[] { new AbortCommunicator() }, fx1);

        foreach (var (s, rank) in new[] { (s0, 0), (s1, 1) })
        {
            var (joined, isNew, fx) = s.Handle(Nccl(3, IdA, "a", "b"), rank == 0 ? "a" : "b");
            Assert.False(isNew); // the same group, now with its id: no regroup of the step machine
            var j = Assert.IsType<JoinNccl>(Assert.Single(fx));
            Assert.Equal((IdA, rank, 2, 3L, "cuda:1"), (j.Id, j.Rank, j.World, j.Generation, j.Device));
            Assert.Empty(joined.Handle(Nccl(3, IdA, "a", "b"), rank == 0 ? "a" : "b").Effects); // a repeat joins nothing
        }
    }

    [Fact]
    public void A_newer_generation_aborts_the_old_communicator_and_older_ones_are_ignored()
    {
        var s = GroupFormation.None.Handle(Nccl(3, null, "a", "b"), "b").State.Handle(Nccl(3, IdA, "a", "b"), "b").State;
        Assert.Empty(s.Handle(Nccl(2, IdB, "b"), "b").Effects);
        var (next, isNew, fx) = s.Handle(Nccl(4, null, "b"), "b");
        Assert.True(isNew);
        Assert.Equal(new FormationEffect[] { new AbortCommunicator(), new CreateNcclId("r", 4) }, fx); // b is rank 0 now
        Assert.Equal((4L, 0, false), (next.Generation, next.Rank, next.Joined));
    }

    [Fact]
    public void A_ring_group_forms_the_ring_at_once_and_a_non_member_forms_nothing()
    {
        var ring = new AllReduceGroup("r", 5, Peers("a", "b"), null);
        var fx = GroupFormation.None.Handle(ring, "b").Effects;
        Assert.IsType<AbortCommunicator>(fx[0]);
        Assert.Equal(1, Assert.IsType<FormRing>(fx[1]).Rank);
        var (outside, _, none) = GroupFormation.None.Handle(ring, "c");
        Assert.Equal(-1, outside.Rank);
        Assert.Equal(new FormationEffect[] { new AbortCommunicator() }, none);
    }
}
