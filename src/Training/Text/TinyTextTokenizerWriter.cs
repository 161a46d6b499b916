using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Text;

/// <summary>
/// Writes a small Hugging Face tokenizer.json in the Llama-3 format (same pre-tokenizer, byte-level BPE with
/// ignore_merges, the 256 Higgs added tokens by name) with merges learnt from a corpus. The demo and tests use it
/// where the real Llama-3 vocabulary (Meta licence) cannot be shipped; a tiny model can embed its few hundred ids.
/// </summary>
public static class TinyTextTokenizerWriter
{
    /// <summary>The 256 Higgs added-token names in id order (the committed table).</summary>
    public static IReadOnlyList<string> HiggsAddedTokenNames()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("higgs_added_tokens.json")
                      ?? throw new InvalidOperationException("higgs_added_tokens.json is not embedded in the Training assembly");
        var root = JsonNode.Parse(s)!;
        return root["names"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
    }

    /// <summary>Learns <paramref name="merges"/> BPE merges from <paramref name="corpus"/> and writes tokenizer.json.</summary>
    public static void Write(string path, IEnumerable<string> corpus, int merges = 200)
    {
        // byte-level pieces as the real pre-tokenizer would produce them, counted
        var pieceCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in corpus)
            foreach (var piece in Llama3PreTokenizer.Split(text))
            {
                var bl = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(piece));
                pieceCounts[bl] = pieceCounts.GetValueOrDefault(bl) + 1;
            }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        var words = pieceCounts.Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var mergeList = new List<string>();
        for (int m = 0; m < merges; m++)
        {
            var pairs = new Dictionary<(string, string), long>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairs[(symbols[i], symbols[i + 1])] = pairs.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            if (pairs.Count == 0) break;
            // most frequent pair; ties broken by the pair's text so that the file is deterministic
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1 + "\u0000" + p.Key.Item2, StringComparer.Ordinal).First().Key;
            var merged = best.Item1 + best.Item2;
            if (!vocab.ContainsKey(merged)) vocab[merged] = vocab.Count;
            mergeList.Add(best.Item1 + " " + best.Item2);
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }

        int firstAdded = vocab.Count;
        var added = new JsonArray();
        var names = HiggsAddedTokenNames();
        for (int i = 0; i < names.Count; i++)
            added.Add(new JsonObject
            {
                ["id"] = firstAdded + i, ["content"] = names[i], ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        var vocabJson = new JsonObject();
        foreach (var (k, v) in vocab.OrderBy(kv => kv.Value)) vocabJson[k] = v;
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Llama3PreTokenizer.Pattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    byteLevel.DeepClone()),
            },
            ["post_processor"] = byteLevel.DeepClone(),
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
                ["vocab"] = vocabJson,
                ["merges"] = new JsonArray(mergeList.Select(m => (JsonNode)m).ToArray()),
            },
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }
}
