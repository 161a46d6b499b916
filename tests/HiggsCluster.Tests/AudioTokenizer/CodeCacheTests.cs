using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class CodeCacheTests
{
    private static readonly byte[] Audio = Enumerable.Range(0, 5000).Select(i => (byte)(i * 31)).ToArray();

    [Fact]
    public void Second_request_is_a_hit_with_equal_codes_and_other_keys_miss()
    {
        using var scope = torch.NewDisposeScope();
        var dir = TinyTokenizerFixture.NewTempDir("cache");
        var cache = new CodeCache(dir, "tok-a");
        int encodes = 0;
        Tensor Enc() { encodes++; return arange(16, dtype: ScalarType.Int64).reshape(8, 2); }
        var first = cache.GetOrEncode(Audio, 0.5, 2.0, Enc);
        var second = cache.GetOrEncode(Audio, 0.5, 2.0, Enc);
        Assert.Equal((1L, 1L, 1), (cache.Hits, cache.Misses, encodes));
        Assert.Equal(TinyTokenizerFixture.Longs(first), TinyTokenizerFixture.Longs(second));
        Assert.Equal(first.shape, second.shape);

        cache.GetOrEncode(Audio, 0.6, 2.0, Enc);                  // other offset
        cache.GetOrEncode(Audio, 0.5, null, Enc);                 // other duration
        var changed = (byte[])Audio.Clone(); changed[10] ^= 1;
        cache.GetOrEncode(changed, 0.5, 2.0, Enc);                // other bytes
        new CodeCache(dir, "tok-b").GetOrEncode(Audio, 0.5, 2.0, Enc); // other tokenizer
        Assert.Equal(5, encodes);

        var otherProcess = new CodeCache(dir, "tok-a");           // same directory, fresh counters
        otherProcess.GetOrEncode(Audio, 0.5, 2.0, Enc);
        Assert.Equal((1L, 0L, 5), (otherProcess.Hits, otherProcess.Misses, encodes));
    }

    [Fact]
    public void Concurrent_writers_of_one_entry_leave_one_complete_file()
    {
        var dir = TinyTokenizerFixture.NewTempDir("cache-race");
        var expected = Enumerable.Range(0, 8 * 300).Select(i => (long)(i % 1024)).ToArray();
        var results = new long[8][];
        using var start = new Barrier(8);
        var threads = Enumerable.Range(0, 8).Select(i => new Thread(() =>
        {
            using var scope = torch.NewDisposeScope();
            var cache = new CodeCache(dir, "tok");                // one instance per "process"
            start.SignalAndWait();
            var codes = cache.GetOrEncode(Audio, 0, null, () => tensor(expected).reshape(8, 300));
            results[i] = TinyTokenizerFixture.Longs(codes);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var r in results) Assert.Equal(expected, r);
        var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories);
        Assert.Single(files);
        Assert.EndsWith(".safetensors", files[0]);
        using var scope2 = torch.NewDisposeScope();
        var reread = new CodeCache(dir, "tok").TryGet(new CodeCache(dir, "tok").KeyFor(Audio, 0, null));
        Assert.NotNull(reread);
        Assert.Equal(expected, TinyTokenizerFixture.Longs(reread!));
    }

    [Fact]
    public void A_damaged_entry_is_a_miss_and_is_rewritten()
    {
        using var scope = torch.NewDisposeScope();
        var dir = TinyTokenizerFixture.NewTempDir("cache-damaged");
        var cache = new CodeCache(dir, "tok");
        var codes = arange(16, dtype: ScalarType.Int64).reshape(8, 2);
        cache.GetOrEncode(Audio, 0, null, () => codes);
        var path = cache.PathFor(cache.KeyFor(Audio, 0, null));
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..20]);
        var again = cache.GetOrEncode(Audio, 0, null, () => codes);
        Assert.Equal(2, cache.Misses);
        Assert.Equal(TinyTokenizerFixture.Longs(codes), TinyTokenizerFixture.Longs(cache.TryGet(cache.KeyFor(Audio, 0, null))!));
        Assert.Equal(TinyTokenizerFixture.Longs(codes), TinyTokenizerFixture.Longs(again));
    }

    [Fact]
    public void Tokenizer_identity_keys_the_cache_and_encodes_real_audio()
    {
        using var scope = torch.NewDisposeScope();
        var dir = TinyTokenizerFixture.NewTempDir("cache-tok");
        var tok = TinyTokenizerFixture.Model;
        var cache = new CodeCache(dir, tok);
        var wavPath = Path.Combine(dir, "clip.raw");
        var wave = TinyTokenizerFixture.Wave(4000);
        File.WriteAllBytes(wavPath, wave.SelectMany(BitConverter.GetBytes).ToArray());
        var a = cache.GetOrEncode(wavPath, 0, null, tok, () => wave);
        var b = cache.GetOrEncode(wavPath, 0, null, tok, () => throw new InvalidOperationException("must not decode on a hit"));
        Assert.Equal(TinyTokenizerFixture.Longs(tok.Encode(wave)), TinyTokenizerFixture.Longs(a));
        Assert.Equal(TinyTokenizerFixture.Longs(a), TinyTokenizerFixture.Longs(b));
        Assert.Equal(1, cache.Hits);
    }
}
