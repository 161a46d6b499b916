using System.Text;
using HiggsCluster.Training.Data;
using Xunit;

namespace HiggsCluster.Tests.Data;

[Trait("Category", "Data")]
public sealed class ManifestReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("higgs-manifest-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllText(p, text, new UTF8Encoding(false));
        return p;
    }

    private const string Good = """{"messages":[{"role":"user","content":"Hi."},{"role":"assistant","content":{"type":"audio","audio_url":"a/b.wav"}}]}""";

    [Fact]
    public void Jsonl_reports_bad_entries_by_index_and_field_and_keeps_going()
    {
        var path = Write("m.jsonl", string.Join("\n",
            Good,
            "{\"messages\": [ {\"role\": \"user\", \"content\": \"x\"}",            // 1: bad JSON
            """{"messages":[{"role":"narrator","content":"x"}]}""",                // 2: unknown role
            """{"start_index":0}""",                                               // 3: no messages
            "",
            """{"messages":[{"role":"user","content":42}]}""",                     // 4: content of wrong type
            """{"messages":[{"role":"user","content":["ok",{"type":"text","text":"t"},7]}]}""", // 5: bad list item
            Good));                                                                // 6
        var items = ManifestReader.Read(path).ToList();
        Assert.Equal(7, items.Count);
        Assert.Equal(Enumerable.Range(0, 7), items.Select(i => i.Index));
        Assert.NotNull(items[0].Sample);
        Assert.NotNull(items[6].Sample);

        Assert.Equal(1, items[1].Error!.Index);
        Assert.Contains("invalid JSON", items[1].Error!.Message);
        Assert.Equal(2, items[1].Error!.Line);

        Assert.Equal("messages[0].role", items[2].Error!.Field);
        Assert.Contains("narrator", items[2].Error!.Message);
        Assert.Equal("messages", items[3].Error!.Field);
        Assert.Contains("missing", items[3].Error!.Message);
        Assert.Equal("messages[0].content", items[4].Error!.Field);
        Assert.Equal(6, items[4].Error!.Line);
        Assert.Equal("messages[0].content[2]", items[5].Error!.Field);
        Assert.Contains("entry 5", items[5].Error!.ToString());
    }

    [Fact]
    public void Json_array_reports_bad_entries_and_resolves_audio_urls()
    {
        var path = Write("m.json", "\uFEFF[\n" + string.Join(",\n",
            Good,
            """{"messages":[{"role":"user","content":{"type":"audio","audio_url":"x.wav","sample_rate":24000}}]}""",
            "17",
            """{"messages":[{"role":"assistant","content":{"type":"audio","audio_url":"/abs/y.wav","offset":1,"duration":2.5}}]}""") + "\n]\n");
        var items = ManifestReader.Read(path).ToList();
        Assert.Equal(4, items.Count);
        var audio = (AudioContent)items[0].Sample!.Messages[1].Content[0];
        Assert.Equal("a/b.wav", audio.AudioUrl);
        Assert.Equal(Path.Combine(_dir, "a", "b.wav"), audio.ResolvedPath);
        Assert.Equal("messages[0].content", items[1].Error!.Field);
        Assert.Contains("sample_rate", items[1].Error!.Message);
        Assert.Equal("", items[2].Error!.Field);
        Assert.Contains("object", items[2].Error!.Message);
        var abs = (AudioContent)items[3].Sample!.Messages[0].Content[0];
        Assert.Equal("/abs/y.wav", abs.ResolvedPath);
        Assert.Equal(1.0, abs.Offset);
        Assert.Equal(2.5, abs.Duration);
    }

    [Fact]
    public void Json_array_entries_larger_than_the_read_buffer_are_parsed()
    {
        var big = new string('A', 300_000);
        var entry = $$$"""{"messages":[{"role":"user","content":{"type":"audio","audio_url":"","raw_audio":"{{{big}}}"}}]}""";
        var path = Write("big.json", $"[{entry},{Good},{entry}]");
        var items = ManifestReader.Read(path).ToList();
        Assert.Equal(3, items.Count);
        Assert.All(items, i => Assert.Null(i.Error));
        Assert.Equal(big, ((AudioContent)items[2].Sample!.Messages[0].Content[0]).RawAudio);
    }

    [Fact]
    public void Truncated_or_malformed_array_ends_with_one_error()
    {
        var truncated = ManifestReader.Read(Write("t.json", $"[{Good},{Good},{{\"messages\":[")).ToList();
        Assert.Equal(3, truncated.Count);
        Assert.Null(truncated[1].Error);
        Assert.Equal(2, truncated[2].Error!.Index);
        Assert.Matches("truncated|invalid JSON", truncated[2].Error!.Message);

        var malformed = ManifestReader.Read(Write("b.json", $"[{Good} {Good}]")).ToList();
        Assert.Equal(2, malformed.Count);
        Assert.Contains("invalid JSON", malformed[1].Error!.Message);
    }

    [Fact]
    public void Large_array_is_streamed_with_bounded_memory()
    {
        const int count = 200_000;
        var path = Path.Combine(_dir, "large.json");
        using (var w = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16))
        {
            w.Write('[');
            for (int i = 0; i < count; i++)
            {
                if (i > 0) w.Write(",\n");
                w.Write($$$"""{"messages":[{"role":"user","content":"Say {{{i}}}."},{"role":"assistant","content":{"type":"audio","audio_url":"{{{i}}}.wav"}}],"id":{{{i}}}}""");
            }
            w.Write(']');
        }
        long fileBytes = new FileInfo(path).Length;

        using var fs = new CountingStream(File.OpenRead(path));
        int seen = 0;
        long maxAhead = 0;
        WeakReference? first = null;
        foreach (var item in ManifestReader.Read(fs, _dir))
        {
            Assert.Null(item.Error);
            if (seen == 0)
            {
                Assert.True(fs.BytesRead < fileBytes / 100, $"the first entry needed {fs.BytesRead} of {fileBytes} bytes read");
                first = WeakOf(item);
            }
            maxAhead = Math.Max(maxAhead, fs.BytesRead - (long)((double)fileBytes * seen / count));
            if (seen == count / 2)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Assert.False(first!.IsAlive, "the reader keeps entries it has already yielded");
            }
            seen++;
        }
        Assert.Equal(count, seen);
        Assert.True(maxAhead < 1 << 20, $"the reader ran {maxAhead} bytes ahead of the entries it yielded");
    }

    // a separate frame, so no debug-build temporary of the caller keeps the sample alive
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference WeakOf(ManifestItem item) => new(item.Sample);

    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            BytesRead += n;
            return n;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
