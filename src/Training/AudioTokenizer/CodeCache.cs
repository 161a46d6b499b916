using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using HiggsCluster.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// Content-addressed store of tokenizer codes on a directory that several processes may share. The key covers the
/// source audio bytes, the excerpt (offset/duration) and the tokenizer identity (sizes + folded weights), so a changed
/// file or model never returns stale codes. Entries are written to a unique temporary file and renamed into place,
/// so readers only ever see complete files and concurrent writers of the same entry are harmless.
/// </summary>
public sealed class CodeCache
{
    private const string CodesTensor = "codes";
    private long _hits, _misses;

    public CodeCache(string directory, string tokenizerIdentity)
    {
        if (string.IsNullOrWhiteSpace(tokenizerIdentity)) throw new ArgumentException("tokenizer identity is empty", nameof(tokenizerIdentity));
        Directory.CreateDirectory(directory);
        Root = directory;
        TokenizerIdentity = tokenizerIdentity;
    }

    public CodeCache(string directory, HiggsAudioTokenizer tokenizer) : this(directory, tokenizer.Weights.Identity) { }

    public string Root { get; }
    public string TokenizerIdentity { get; }
    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>sha256 over the audio bytes' sha256, the excerpt and the tokenizer identity.</summary>
    public string KeyFor(ReadOnlySpan<byte> audioBytes, double offsetSeconds, double? durationSeconds)
    {
        var audioHash = Convert.ToHexStringLower(SHA256.HashData(audioBytes));
        var text = string.Create(CultureInfo.InvariantCulture,
            $"higgs-codes-v1|{audioHash}|{offsetSeconds:R}|{(durationSeconds is { } d ? d.ToString("R", CultureInfo.InvariantCulture) : "all")}|{TokenizerIdentity}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    public string PathFor(string key) => Path.Combine(Root, key[..2], key + ".safetensors");

    /// <summary>The cached codes of <paramref name="key"/>, or null.</summary>
    public Tensor? TryGet(string key)
    {
        var path = PathFor(key);
        if (!File.Exists(path)) return null;
        try
        {
            using var f = new SafetensorsFile(path);
            return f.Load(CodesTensor);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // an unreadable entry (e.g. damaged by an external copy) is treated as absent and rewritten on the next store
            return null;
        }
    }

    /// <summary>Codes for this audio excerpt: from the cache when present, else from <paramref name="encode"/>, then stored.</summary>
    public Tensor GetOrEncode(ReadOnlySpan<byte> audioBytes, double offsetSeconds, double? durationSeconds, Func<Tensor> encode)
    {
        var key = KeyFor(audioBytes, offsetSeconds, durationSeconds);
        var cached = TryGet(key);
        if (cached is not null) { Interlocked.Increment(ref _hits); return cached; }
        Interlocked.Increment(ref _misses);
        var codes = encode();
        if (codes.dtype != ScalarType.Int64) throw new InvalidOperationException($"encoder returned {codes.dtype} codes, expected Int64");
        Store(key, codes);
        return codes;
    }

    /// <summary>Codes of an excerpt of an audio file; <paramref name="loadWave"/> decodes it to 24 kHz mono only on a miss.</summary>
    public Tensor GetOrEncode(string audioPath, double offsetSeconds, double? durationSeconds, HiggsAudioTokenizer tokenizer, Func<float[]> loadWave)
    {
        var bytes = File.ReadAllBytes(audioPath);
        return GetOrEncode(bytes, offsetSeconds, durationSeconds, () => tokenizer.Encode(loadWave()));
    }

    private void Store(string key, Tensor codes)
    {
        var path = PathFor(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = Path.Combine(Path.GetDirectoryName(path)!, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            SafetensorsWriter.Write(tmp, [new KeyValuePair<string, Tensor>(CodesTensor, codes)],
                new Dictionary<string, string> { ["tokenizer"] = TokenizerIdentity });
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
