using System.Text;
using System.Text.Json.Nodes;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Model;

/// <summary>
/// Files that lie about themselves (safetensors headers, model configs, YAML alias bombs, absurd shard counts) are
/// refused with one line naming the file, tensor or key, before anything is allocated or read from them.
/// </summary>
[Trait("Category", "Adversarial")]
public sealed class AdversarialFormatTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A safetensors file with the given header text and data bytes, exactly as written.</summary>
    private string Raw(string header, int dataBytes = 16, long? claimedHeaderLength = null)
    {
        var path = _dir.File($"t{Guid.NewGuid():N}.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes(claimedHeaderLength ?? h.Length));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    private static InvalidDataException Refused(string path)
    {
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", "tensor 'w' appears twice in the header")]
    [InlineData("""{"w":{"dtype":"F32","data_offsets":[0,8]}}""", "tensor 'w' has no 'shape' list")]
    [InlineData("""{"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}}""", "tensor 'w' has no string 'dtype'")]
    [InlineData("""{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}""", "tensor 'w' has the unsupported dtype 'Q4'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", "tensor 'w' (F32 [3]) needs 12 bytes, its data offsets declare 8")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}""", "tensor 'w' has data offsets [0, 32] outside the 16 data bytes")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", "tensor 'w' has a 'shape' entry that is not a non-negative integer (-2)")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", "tensor 'w' has 1 'data_offsets' values, needs 2")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""", "too large to address")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", "tensor 'b' shares data bytes with tensor 'a'")]
    [InlineData("""{"w":"F32"}""", "tensor 'w' is not an object")]
    public void A_lying_safetensors_header_is_one_line_naming_the_file_and_tensor(string header, string expected) =>
        Assert.Contains(expected, Refused(Raw(header)).Message);

    [Fact]
    public void A_header_claiming_4_GB_is_refused_before_it_is_allocated()
    {
        var path = Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", claimedHeaderLength: 4L << 30);
        var e = Refused(path);
        Assert.Contains($"it claims {4L << 30} bytes", e.Message);
        Assert.Contains($"the limit is {SafetensorsFile.MaxHeaderBytes}", e.Message);
    }

    [Fact]
    public void I32_data_under_a_floating_point_weight_is_refused_not_converted()
    {
        var path = _dir.File("ints.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["layer.weight"] = arange(6, dtype: ScalarType.Int32).reshape(2, 3) });
        using var f = new SafetensorsFile(path);
        var e = Assert.Throws<InvalidDataException>(() => f.Load("layer.weight", ScalarType.Float32));
        Assert.Equal($"{path}: tensor 'layer.weight' holds I32 data where a floating-point (F32) tensor is expected", e.Message);
        using var ints = f.Load("layer.weight"); // read as what it is, it is fine
        Assert.Equal(15L, ints.sum().item<long>());
    }

    [Fact]
    public void A_valid_file_still_reads_after_all_these_checks()
    {
        var path = _dir.File("ok.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = ones(3), ["b"] = zeros(2, 2, dtype: ScalarType.BFloat16) },
            new Dictionary<string, string> { ["format"] = "pt" });
        using var f = new SafetensorsFile(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(3f, f.Load("a").sum().item<float>());
        Assert.Equal(new long[] { 2, 2 }, f.Load("b").shape);
    }

    private static JsonObject TinyConfig()
    {
        var ws = HiggsCluster.Tests.Engine.EngineWorkspace.Workspace;
        return HiggsAudioConfig.Load(Path.Combine(ws.BaseModel, "config.json")).ToBosonJson();
    }

    [Theory]
    [InlineData("num_attention_heads", "0", "num_attention_heads must be positive, got 0")]
    [InlineData("hidden_size", "1e12", "text_config.hidden_size must be an integer within 32 bits, got 1e12")]
    [InlineData("hidden_size", "1000000", "hidden_size must be within 1..65536, got 1000000")]
    [InlineData("num_key_value_heads", "0", "num_key_value_heads must be within 1..1024, got 0")]
    [InlineData("num_hidden_layers", "-3", "num_hidden_layers must be within 1..1024, got -3")]
    [InlineData("vocab_size", "0", "vocab_size must be within 1..4000000, got 0")]
    public void A_config_value_that_cannot_be_built_is_refused_naming_the_key(string key, string value, string expected)
    {
        var json = TinyConfig();
        json["text_config"]![key] = JsonNode.Parse(value);
        var path = _dir.File("config.json");
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => HiggsAudioConfig.Load(path));
        Assert.Equal($"{path}: {expected}", e.Message);
    }

    [Fact]
    public void A_yaml_alias_bomb_is_refused_naming_the_limit()
    {
        var yaml = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i < 10; i++)
            yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        var path = _dir.File("bomb.yaml");
        File.WriteAllText(path, yaml.ToString());
        var e = Assert.Throws<TrainConfigException>(() => TrainConfig.Load(path, Array.Empty<KeyValuePair<string, string>>(), new Dictionary<string, string>()));
        Assert.Equal("--config", e.Key);
        Assert.Contains($"more than {TrainConfig.MaxAliases} YAML aliases", e.Message);
    }

    [Fact]
    public void A_mapping_alias_fan_out_is_stopped_at_the_key_limit()
    {
        // few aliases, many keys: 8 levels of 8 references each would be 8^8 keys walked
        var yaml = new StringBuilder("m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
        for (int i = 1; i < 8; i++)
            yaml.Append($"m{i}: &m{i} {{{string.Join(", ", Enumerable.Range(0, 8).Select(k => $"k{k}: *m{i - 1}"))}}}\n");
        var path = _dir.File("fan.yaml");
        File.WriteAllText(path, yaml.ToString());
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<TrainConfigException>(() => TrainConfig.Load(path, Array.Empty<KeyValuePair<string, string>>(), new Dictionary<string, string>()));
        Assert.Contains($"more than {TrainConfig.MaxKeys} keys after expanding aliases", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
    }

    [Fact]
    public void A_shard_count_of_100_million_is_refused_naming_the_key_and_the_limit()
    {
        using var tmp = new TempDir();
        var o = HiggsCluster.Tests.Engine.EngineWorkspace.Options(tmp.File("run"), maxSteps: 2);
        var e = Assert.Throws<TrainConfigException>(() => HiggsCluster.Cli.Node.RunSpecFactory.From(o, "r", shardCount: 100_000_000));
        Assert.Equal("cluster.shards", e.Key);
        Assert.Contains($"must be within 1..{HiggsCluster.Cli.Node.RunSpecFactory.MaxShards} (--shards), got 100000000", e.Message);
        Assert.Equal(16, HiggsCluster.Cli.Node.RunSpecFactory.From(o, "r").ShardCount);
    }

    [Theory]
    [InlineData("argv", "request argv has 513 items, over the limit of 512 (request argv items)")]
    [InlineData("arg", "request argv[2] has 65537 characters, over the limit of 65536 (request argv item size)")]
    [InlineData("token", "request token has 1025 characters, over the limit of 1024 (request token size)")]
    public void A_command_host_request_field_over_its_cap_is_refused_naming_the_limit(string field, string expected)
    {
        var argv = field switch
        {
            "argv" => new JsonArray(Enumerable.Repeat("x", 513).Select(x => (JsonNode?)x).ToArray()),
            "arg" => new JsonArray("run", "submit", new string('a', 65537)),
            _ => new JsonArray("run", "list"),
        };
        var request = new JsonObject { ["argv"] = argv, ["token"] = field == "token" ? new string('t', 1025) : "secret" };
        var e = Assert.Throws<FormatException>(() => HiggsCluster.Cli.Pbm.Wire.DecodeRequest(request.ToJsonString()));
        Assert.Equal(expected, e.Message);
        // at the caps themselves it is accepted
        var ok = new JsonObject { ["argv"] = new JsonArray("run", "submit", new string('a', 65536)), ["token"] = new string('t', 1024) };
        Assert.Equal(3, HiggsCluster.Cli.Pbm.Wire.DecodeRequest(ok.ToJsonString()).Argv.Length);
    }
}
