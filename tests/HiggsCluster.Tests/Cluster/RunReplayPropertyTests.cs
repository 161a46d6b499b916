using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// Live and replay agree by construction: for seeded random command sequences (membership changes, reports, late
/// echoes, requests, hand-overs, roll-backs, coordinator take-overs), the durable part of the live state equals the fold
/// of its journalled events after every command, also once the journal went through its JSON records.
/// </summary>
public sealed class RunReplayPropertyTests
{
    private static readonly string[] Workers = { "A", "B", "C", "D" };

    private sealed class Sim(int seed)
    {
        public readonly Random Rng = new(seed);
        public readonly List<RunEvent> Journal = new();
        public RunState Live = null!;
        public int Commits, CommitEffects;

        public RunSpec NewSpec()
        {
            bool resumed = Rng.Next(5) == 0;
            return ToyCluster.Spec($"p{seed}", ranks: 2, micro: 1 + Rng.Next(2), accum: 1, epochs: 1 + Rng.Next(2), shards: 2 + Rng.Next(2),
                startWorkers: 1 + Rng.Next(2), save: Rng.Next(4), val: Rng.Next(4), seed: (ulong)seed,
                valFraction: Rng.Next(3) == 0 ? 0 : 0.25, patience: Rng.Next(3)) with
            {
                StartStep = resumed ? 1 + Rng.Next(2) : 0,
                ResumeFrom = resumed ? "ck/start" : null,
                ResumeBestLoss = resumed ? 2.0 : null,
                ResumeValidationsWithoutImprovement = resumed ? Rng.Next(2) : 0,
            };
        }

        public T Pick<T>(IReadOnlyList<T> xs) => xs[Rng.Next(xs.Count)];

        public RunCommand Next(int samples)
        {
            var s = Live;
            long g = s.Cursor.GlobalStep;
            switch (Rng.Next(100))
            {
                case < 30 when s.InFlight is { } f:
                    bool bad = Rng.Next(200) == 0;
                    return new StepReported(Rng.Next(10) == 0 ? s.Generation - 1 : s.Generation, f.GlobalStep, Rng.Next(s.World + 1) - (Rng.Next(30) == 0 ? 1 : 0),
                        bad ? new[] { -1.0, 1.0 } : new[] { 1.0, Rng.NextDouble() * 3 }, Rng.Next(150) == 0 ? 6UL : 5UL);
                case < 40:
                    var loaders = new[] { "L1", "L2" }.Where(_ => Rng.Next(4) != 0).ToArray();
                    var group = Workers.Where(_ => Rng.Next(3) != 0).ToArray();
                    return new MembershipChanged(loaders, s.Generation + Rng.Next(2), group.Length, Rng.Next(5) == 0 ? null : group);
                case < 50:
                    int shard = Rng.Next(s.Spec.ShardCount + (Rng.Next(20) == 0 ? 1 : 0));
                    var ids = Enumerable.Range(0, samples).Select(i => (long)i).Where(i => i % s.Spec.ShardCount == shard).ToArray();
                    var unusable = ids.Where(_ => Rng.Next(8) == 0).ToArray();
                    return new ShardsReported(new[] { shard }, ids, ids.Except(unusable).ToArray(), unusable.Select(i => $"entry {i}: bad").ToArray());
                case < 58: return new CheckpointFinished(Rng.Next(8) == 0 ? g - 1 : g, Rng.Next(2) == 0 ? null : $"ck/checkpoint-{g}");
                case < 66: return new ValidationFinished(Rng.Next(8) == 0 ? g + 1 : g, Rng.NextDouble() * 3);
                case < 68: return new CheckpointRequested(Rng.Next(2) == 0 ? null : "mine");
                case < 70: return new ValidationRequested();
                case < 71: return Rng.Next(3) == 0 ? new StopRequested(Rng.Next(2) == 0) : new ValidationRequested();
                case < 72: return Rng.Next(4) == 0 ? new FailRun("drill") : new ResumeWaitOver();
                case < 80: return new WorkerProgress(Pick(Workers), Rng.Next(4) == 0 ? g - 1 : g);
                case < 86: return new WorkerInstalled(Pick(Workers), g);
                case < 89: return new HandOverRefused(s.HandOver?.From ?? Pick(Workers), g, "not held");
                case < 94: return new ResumeWaitOver();
                default: return new HandOverOverdue(s.HandOver?.Generation ?? s.Generation, s.HandOver?.GlobalStep ?? g);
            }
        }

        public void Do(RunCommand cmd)
        {
            var t = RunMachine.Handle(Live, cmd);
            Journal.AddRange(t.Journalled);
            Live = t.State;
            Commits += t.Journalled.Count(e => e is RunEvents.StepCommitted);
            CommitEffects += t.Effects.Count(e => e is StepCommittedEffect);
            Assert.Equal(Live.Run, RunState.Replay(Journal).Run);
        }
    }

    [Fact]
    public void Random_command_sequences_replay_into_the_live_durable_state_after_every_command()
    {
        int completed = 0, rolledBack = 0, takeovers = 0;
        for (int seed = 1; seed <= 150; seed++)
        {
            var sim = new Sim(seed);
            var spec = sim.NewSpec();
            int samples = 8 + sim.Rng.Next(12);
            sim.Live = RunState.Submit(spec);
            sim.Journal.Add(new RunEvents.Submitted(spec));
            for (int i = 0; i < 400 && !sim.Live.IsTerminal; i++)
            {
                if (sim.Rng.Next(40) == 0)
                {
                    // the coordinator dies: its successor folds the journal and learns the cluster again
                    var taken = RunState.Replay(sim.Journal).Recovered();
                    Assert.Equal(sim.Live.Run, taken.Run);
                    sim.Live = taken;
                    takeovers++;
                    continue;
                }
                try { sim.Do(sim.Next(samples)); }
                catch (Exception e) when (e is not Xunit.Sdk.XunitException) { throw new InvalidOperationException($"seed {seed}, command {i}: {e.Message}", e); }
            }
            Assert.Equal(sim.Commits, sim.CommitEffects);
            if (sim.Live.Phase == RunPhase.Completed) completed++;
            rolledBack += sim.Journal.Count(e => e is RunEvents.RolledBack);

            // the same journal through the JSON records the coordinator writes replays into the same state
            var json = sim.Journal.Select(e => (RunEvent)JournalFormat.ToRecord(e).ToEvent()).ToList();
            Assert.Equal(sim.Live.Run, RunState.Replay(json).Run with { Spec = spec });
        }
        // the sequences reach the interesting ends, not only rejections
        Assert.True(completed > 0, "no random run completed");
        Assert.True(rolledBack > 0, "no random run rolled back");
        Assert.True(takeovers > 0);
    }
}
