using HiggsCluster.Planning;
using System.Buffers.Binary;
using System.Text;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Engine;

[Trait("Category", "Engine")]
public sealed class PureEngineTests
{
    [Fact]
    public void AdamW_matches_torch_AdamW_over_several_steps()
    {
        var g = new Generator(7);
        var init = Enumerable.Range(0, 3).Select(i => randn(new long[] { 5, 4 }, generator: g)).ToList();
        var grads = Enumerable.Range(0, 5).Select(_ => init.Select(t => randn(t.shape, generator: g)).ToList()).ToList();
        var ours = init.Select(t => new Parameter(t.clone())).ToList();
        var theirs = init.Select(t => new Parameter(t.clone())).ToList();
        var a = new LoraAdamW(ours.Select((p, i) => ($"p{i}", p)), 0.9, 0.95, 1e-8, 0.01);
        var b = optim.AdamW(theirs, 1e-2, 0.9, 0.95, 1e-8, 0.01);
        for (int s = 0; s < grads.Count; s++)
        {
            for (int i = 0; i < ours.Count; i++) { ours[i].grad = grads[s][i].clone(); theirs[i].grad = grads[s][i].clone(); }
            a.Step(1e-2);
            b.step();
        }
        for (int i = 0; i < ours.Count; i++)
        {
            Assert.True(ours[i].allclose(theirs[i], 1e-6, 1e-7), $"p{i}: max diff {(ours[i] - theirs[i]).abs().max().item<float>()}");
            Assert.False(EngineWorkspace.Same(ours[i], init[i]));
        }
        Assert.Equal(5, a.StepOf("p0"));
    }

    [Fact]
    public void Clip_grad_norm_returns_the_norm_before_clipping_and_scales_to_max()
    {
        var p = new Parameter(zeros(2, 2)); var q = new Parameter(zeros(3));
        p.grad = full(2, 2, 3.0f); q.grad = full(3, 4.0f);
        double expect = Math.Sqrt(4 * 9 + 3 * 16);
        Assert.Equal(expect, GradClip.ClipGradNorm(new[] { p, q }, 1.0), 4);
        var after = Math.Sqrt(p.grad.pow(2).sum().item<float>() + q.grad.pow(2).sum().item<float>());
        Assert.Equal(1.0, after, 4);
    }

    [Fact]
    public void Schedules_follow_the_transformers_formulas()
    {
        var cos = new LrSchedule(ScheduleKind.Cosine, 10, 110);
        // the warmup starts at lr/warmup, not 0: the first step trains
        Assert.Equal(0.1, cos.Factor(0), 12);
        Assert.Equal(0.6, cos.Factor(5), 12);
        Assert.Equal(1.0, cos.Factor(9), 12);
        Assert.Equal(1.0, cos.Factor(10), 12);
        Assert.Equal(0.5, cos.Factor(60), 12);           // half way through the decay
        Assert.Equal(0.0, cos.Factor(110), 12);
        var lin = new LrSchedule(ScheduleKind.Linear, 10, 110);
        Assert.Equal(0.75, lin.Factor(35), 12);
        Assert.Equal(0.0, lin.Factor(200), 12);
        var con = new LrSchedule(ScheduleKind.Constant, 4, 100);
        Assert.Equal(0.5, con.Factor(1), 12);
        Assert.Equal(1.0, con.Factor(99), 12);
        // transformers' own warmup, kept to match a reference run: step 0 at lr 0
        var hf = new LrSchedule(ScheduleKind.Cosine, 10, 110, HfWarmup: true);
        Assert.Equal(0.0, hf.Factor(0));
        Assert.Equal(0.5, hf.Factor(5), 12);
        Assert.Equal(cos.Factor(60), hf.Factor(60), 12);
    }

    [Fact]
    public void Sample_plan_covers_each_epoch_once_and_splits_steps_into_rank_micro_batches()
    {
        var ids = Enumerable.Range(0, 23).Select(i => (long)i * 3).ToList();
        var plan = new SamplePlan(ids, 5, microBatchSize: 2, gradAccumulation: 3, ranks: 2, epochs: 2);
        Assert.Equal(12, plan.GlobalBatch);
        Assert.Equal(2, plan.StepsPerEpoch);
        Assert.Equal(4, plan.TotalSteps);
        for (int e = 0; e < 2; e++)
        {
            var seen = Enumerable.Range(e * 2, 2).SelectMany(s => plan.StepSamples(s)).ToList();
            Assert.Equal(ids.OrderBy(x => x), seen.OrderBy(x => x));
        }
        Assert.NotEqual(plan.StepSamples(0), plan.StepSamples(2)); // reshuffled per epoch
        for (int s = 0; s < 4; s++)
        {
            var union = Enumerable.Range(0, 2).SelectMany(r => plan.MicroBatches(s, r)).SelectMany(m => m).ToList();
            Assert.Equal(plan.StepSamples(s), union);
            Assert.All(plan.MicroBatches(s, 0).Concat(plan.MicroBatches(s, 1)), m => Assert.InRange(m.Length, 1, 2));
        }
        var same = new SamplePlan(ids, 5, 2, 3, 2, 2);
        var other = new SamplePlan(ids, 6, 2, 3, 2, 2);
        Assert.Equal(plan.StepSamples(1), same.StepSamples(1));
        Assert.NotEqual(plan.StepSamples(0), other.StepSamples(0));
        Assert.Equal(7, new SamplePlan(ids, 5, 2, 3, 2, 2, maxSteps: 7).TotalSteps);
    }

    [Fact]
    public void Hash_split_is_seeded_stable_and_close_to_the_fraction()
    {
        var ids = Enumerable.Range(0, 4000).Select(i => (long)i).ToList();
        var (train, val) = DataSplit.Split(ids, 1, 0.05);
        Assert.InRange(val.Count, 140, 260);
        Assert.Equal(4000, train.Count + val.Count);
        Assert.Equal(val, DataSplit.Split(ids, 1, 0.05).Validation);
        Assert.NotEqual(val, DataSplit.Split(ids, 2, 0.05).Validation);
        // appending entries keeps the earlier assignment
        Assert.Equal(val, DataSplit.Split(ids.Concat(new long[] { 5000, 5001 }).ToList(), 1, 0.05).Validation.Where(x => x < 4000));
    }

    [Fact]
    public void TensorBoard_records_are_framed_with_masked_crc32c()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789"))); // the standard CRC-32C check value
        var dir = Path.Combine(Path.GetTempPath(), "higgs-tb-" + Guid.NewGuid().ToString("N"));
        string path;
        using (var w = new TensorBoardWriter(dir)) { w.Scalars(3, new[] { ("train/loss", 1.5) }); path = w.Path; }
        var bytes = File.ReadAllBytes(path);
        int at = 0, records = 0;
        while (at < bytes.Length)
        {
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            Assert.Equal(Crc32C.Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)));
            var data = bytes.AsSpan(at + 12, (int)len);
            Assert.Equal(Crc32C.Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len)));
            if (records == 0) Assert.Contains("brain.Event:2", Encoding.ASCII.GetString(data));
            else
            {
                Assert.Contains("train/loss", Encoding.ASCII.GetString(data));
                var f = BitConverter.GetBytes(1.5f);
                Assert.True(data.IndexOf(f) >= 0, "the scalar value is in the record");
            }
            at += 12 + (int)len + 4; records++;
        }
        Assert.Equal(2, records);
        Directory.Delete(dir, true);
    }
}
