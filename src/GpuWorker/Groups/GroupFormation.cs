using HiggsCluster.Messages;

namespace HiggsCluster.GpuWorker.Groups;

public abstract record FormationEffect;
/// <summary>Drop the previous generation's communicator abruptly (a collective may hang on a peer that left).</summary>
public sealed record AbortCommunicator : FormationEffect;
public sealed record FormRing(GroupMember[] Peers, int Rank, long Generation, byte[] Key) : FormationEffect;
/// <summary>Rank 0 of an NCCL group: create the unique id and report it to the coordinator.</summary>
public sealed record CreateNcclId(string RunId, long Generation) : FormationEffect;
public sealed record JoinNccl(byte[] Id, int Rank, int World, long Generation, string Device) : FormationEffect;

/// <summary>
/// Which communicator a worker forms from the group messages it receives, as a pure transition. A newer generation (or
/// another run) replaces the group: the old communicator is aborted and the new one formed, by the TCP ring at once,
/// by NCCL once the coordinator resends the group with the id rank 0 created. Older generations are ignored, and so
/// is a repeat of the current one, except for the NCCL id this rank has not joined with yet.
/// </summary>
public sealed record GroupFormation(string? RunId, long Generation, int Rank, AllReduceBackend Backend, bool Joined)
{
    public static readonly GroupFormation None = new(null, -1, -1, AllReduceBackend.TcpRing, false);

    public sealed record Result(GroupFormation State, bool NewGroup, IReadOnlyList<FormationEffect> Effects);

    public Result Handle(AllReduceGroup g, string workerId)
    {
        bool sameRun = RunId is not null && g.RunId == RunId;
        if (sameRun && g.Generation < Generation) return new(this, false, Array.Empty<FormationEffect>());
        if (sameRun && g.Generation == Generation)
        {
            if (Backend == AllReduceBackend.Nccl && g.Backend == AllReduceBackend.Nccl && g.NcclUniqueId is { } id && !Joined && Rank >= 0)
                return new(this with { Joined = true }, false, new FormationEffect[] { new JoinNccl(id, Rank, g.Peers.Length, g.Generation, g.Device) });
            return new(this, false, Array.Empty<FormationEffect>());
        }
        int rank = Array.FindIndex(g.Peers, p => p.WorkerId == workerId);
        var next = new GroupFormation(g.RunId, g.Generation, rank, g.Backend, false);
        var fx = new List<FormationEffect> { new AbortCommunicator() };
        if (rank >= 0)
        {
            if (g.Backend == AllReduceBackend.TcpRing) fx.Add(new FormRing(g.Peers, rank, g.Generation, g.RingKey));
            else if (g.NcclUniqueId is { } id)
            {
                // the id overtook (or replaced) the first message of the generation
                fx.Add(new JoinNccl(id, rank, g.Peers.Length, g.Generation, g.Device));
                next = next with { Joined = true };
            }
            else if (rank == 0) fx.Add(new CreateNcclId(g.RunId, g.Generation));
        }
        return new(next, true, fx);
    }
}
