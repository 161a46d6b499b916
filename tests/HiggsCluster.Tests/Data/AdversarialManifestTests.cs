using System.Text;
using HiggsCluster.Training.Data;
using Xunit;

namespace HiggsCluster.Tests.Data;

/// <summary>
/// A manifest that is partly garbage (invalid UTF-8, a malformed array element, a line of many megabytes) loses
/// exactly the bad entries: each is one error with its own index and line, and every other entry is still read.
/// </summary>
[Trait("Category", "Adversarial")]
public sealed class AdversarialManifestTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("higgs-adv-manifest-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Entry(int i) =>
        $$$"""{"messages":[{"role":"user","content":"Say {{{i}}}."},{"role":"assistant","content":{"type":"audio","audio_url":"{{{i}}}.wav"}}]}""";

    private string WriteBytes(string name, IEnumerable<byte[]> parts)
    {
        var p = Path.Combine(_dir, name);
        using var fs = File.Create(p);
        foreach (var part in parts) fs.Write(part);
        return p;
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>The entry's text with one byte that is never valid UTF-8 (0xFF) inside the user's text.</summary>
    private static byte[] WithInvalidUtf8(int i)
    {
        var bytes = Utf8(Entry(i));
        int at = Array.IndexOf(bytes, (byte)'S');
        bytes[at] = 0xFF;
        return bytes;
    }

    private static void AssertOnlyErrorsAt(IReadOnlyList<ManifestItem> items, int count, params int[] bad)
    {
        Assert.Equal(count, items.Count);
        Assert.Equal(Enumerable.Range(0, count), items.Select(i => i.Index));
        Assert.Equal(bad, items.Where(i => i.IsError).Select(i => i.Index));
        Assert.All(items.Where(i => i.IsError), i => Assert.Equal(i.Index, i.Error!.Index));
        // every good entry is the one written at its index (the reader did not shift or merge entries)
        foreach (var item in items.Where(i => !i.IsError))
            Assert.Equal($"Say {item.Index}.", ((TextContent)item.Sample!.Messages[0].Content[0]).Text);
    }

    [Fact]
    public void Jsonl_with_invalid_utf8_on_line_235_of_800_reads_the_other_799_and_blames_entry_234()
    {
        var lines = Enumerable.Range(0, 800).Select(i => i == 234 ? WithInvalidUtf8(i) : Utf8(Entry(i)));
        var path = WriteBytes("m.jsonl", lines.SelectMany(l => new[] { l, "\n"u8.ToArray() }));
        var items = ManifestReader.Read(path).ToList();
        AssertOnlyErrorsAt(items, 800, 234);
        var e = items[234].Error!;
        Assert.Equal(235, e.Line);
        Assert.Contains("invalid UTF-8", e.Message);
        Assert.StartsWith("entry 234 (line 235): invalid UTF-8 at byte", e.ToString());
    }

    [Fact]
    public void Json_array_with_malformed_elements_skips_each_and_reads_the_rest()
    {
        var elements = new List<byte[]>();
        for (int i = 0; i < 12; i++)
            elements.Add(i switch
            {
                3 => Utf8("""{"messages": tru, "x": {"nested": [1, 2}]}"""), // a bad literal and a mismatched bracket
                5 => WithInvalidUtf8(5),
                8 => Utf8("""{"messages":[{"role":"user","content":"a \" quote, a ] and a } in a string"}], 12}"""),
                _ => Utf8(Entry(i)),
            });
        var parts = new List<byte[]> { Utf8("[\n") };
        for (int i = 0; i < elements.Count; i++) { if (i > 0) parts.Add(Utf8(",\n")); parts.Add(elements[i]); }
        parts.Add(Utf8("\n]\n"));
        var items = ManifestReader.Read(WriteBytes("m.json", parts)).ToList();
        AssertOnlyErrorsAt(items, 12, 3, 5, 8);
        Assert.Contains("invalid JSON", items[3].Error!.Message);
        Assert.Equal(5, items[3].Error!.Line);
        Assert.StartsWith("invalid UTF-8 at byte", items[5].Error!.Message); // found before the parser ever reads the string
        Assert.Equal(7, items[5].Error!.Line);
    }

    [Fact]
    public void A_missing_comma_in_an_array_costs_the_element_after_it_only()
    {
        var path = WriteBytes("m.json", new[] { Utf8($"[{Entry(0)},{Entry(1)} {Entry(2)},{Entry(3)}]") });
        var items = ManifestReader.Read(path).ToList();
        AssertOnlyErrorsAt(items, 4, 2);
        Assert.Contains("',' missing", items[2].Error!.Message);
    }

    [Fact]
    public void A_jsonl_line_over_the_entry_limit_is_one_error_naming_the_limit_and_is_not_held_in_memory()
    {
        const int limit = 1 << 20;
        var huge = Utf8($$$"""{"messages":[{"role":"user","content":"{{{new string('A', 6 * limit)}}}"}]}""");
        var path = WriteBytes("m.jsonl", new[] { Utf8(Entry(0) + "\n"), huge, Utf8("\n" + Entry(2) + "\n"), huge }); // the last one has no newline
        long before = GC.GetAllocatedBytesForCurrentThread();
        var items = ManifestReader.Read(path, limit).ToList();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        AssertOnlyErrorsAt(items, 4, 1, 3);
        Assert.Equal("the line is longer than the limit of 1 MiB per entry (data.max_entry_bytes); the entry is skipped", items[1].Error!.Message);
        Assert.Equal(2, items[1].Error!.Line);
        Assert.Equal(4, items[3].Error!.Line);
        // 12 MB of lines went through a buffer of a few MB: far less than one copy of them as text (2 bytes a char)
        Assert.True(allocated < 8 * limit, $"reading allocated {allocated} bytes");
    }

    [Fact]
    public void A_json_array_element_over_the_entry_limit_is_skipped_and_the_next_read()
    {
        const int limit = 1 << 20;
        var huge = $$$"""{"messages":[{"role":"user","content":"{{{new string('B', 3 * limit)}}}"}]}""";
        var path = WriteBytes("m.json", new[] { Utf8($"[{Entry(0)},\n{huge},\n{Entry(2)}]") });
        var items = ManifestReader.Read(path, limit).ToList();
        AssertOnlyErrorsAt(items, 3, 1);
        Assert.Contains("longer than the limit of 1 MiB per entry (data.max_entry_bytes)", items[1].Error!.Message);
        Assert.Equal(2, items[1].Error!.Line);
    }

    [Fact]
    public void A_truncated_array_keeps_the_entries_before_it()
    {
        var path = WriteBytes("m.json", new[] { Utf8($"[{Entry(0)},{Entry(1)},{{\"messages\": [\"abc") });
        var items = ManifestReader.Read(path).ToList();
        AssertOnlyErrorsAt(items, 3, 2);
        Assert.Contains("truncated", items[2].Error!.Message);
    }
}
