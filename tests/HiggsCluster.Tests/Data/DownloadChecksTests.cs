using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Engine;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;
using Xunit;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Data;

/// <summary>Half-finished downloads and mixed tokenizer files are named before any work.</summary>
[Collection("Engine"), Trait("Category", "Data")]
public sealed class DownloadChecksTests
{
    private static string CopyOf(string dir, TempDir tmp, string name)
    {
        var copy = tmp.File(name);
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        return copy;
    }

    [Fact]
    public void A_base_folder_missing_a_shard_or_its_weights_is_named_with_what_is_missing()
    {
        using var tmp = new TempDir();
        var ws = EngineWorkspace.Workspace;
        Assert.Empty(ModelFolders.MissingInBase(ws.BaseModel));
        Assert.Empty(ModelFolders.MissingInAudioTokenizer(ws.AudioTokenizer));

        var sharded = tmp.File("sharded");
        using (var m = ModelWeights.LoadModel(ws.BaseModel, PrecisionPolicy.Cpu, TorchSharp.torch.CPU))
            ModelWeights.Save(m, sharded, maxShardBytes: 20_000);
        var shards = Directory.GetFiles(sharded, "model-*.safetensors").Order().ToList();
        Assert.True(shards.Count > 1, "the tiny model should be written in several shards");
        File.Delete(shards[1]);
        var missing = ModelFolders.MissingInBase(sharded);
        Assert.Equal(new[] { $"{Path.GetFileName(shards[1])} (named by model.safetensors.index.json)" }, missing);

        // higgs train refuses it before any work, naming the key and the file
        var o = EngineWorkspace.Options(tmp.File("run"), 1);
        o.BaseModelDir = sharded;
        var e = Assert.Throws<TrainConfigException>(() => o.Validate());
        Assert.Equal("model.base_checkpoint", e.Key);
        Assert.Contains(Path.GetFileName(shards[1]), e.Message);
        Assert.Contains("docs/downloads.md", e.Message);

        var noWeights = CopyOf(ws.AudioTokenizer, tmp, "tok");
        foreach (var f in Directory.GetFiles(noWeights).Where(f => f.EndsWith(".pth") || f.EndsWith(".safetensors"))) File.Delete(f);
        Assert.Contains("the weights (model.pth, or model.safetensors in the transformers layout)", ModelFolders.MissingInAudioTokenizer(noWeights));
        o.BaseModelDir = ws.BaseModel; o.AudioTokenizer = noWeights;
        Assert.Equal("data.audio_tokenizer", Assert.Throws<TrainConfigException>(() => o.Validate()).Key);
    }

    [Fact]
    public void Tokenizer_config_files_must_agree_with_tokenizer_json_and_a_chat_template_is_noted()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("tok");
        Directory.CreateDirectory(dir);
        var json = Path.Combine(dir, "tokenizer.json");
        File.Copy(EngineWorkspace.Workspace.TextTokenizer, json);
        var tok = TextTokenizer.Load(json);
        Assert.Empty(TokenizerConfigCheck.Check(json, tok).Errors);

        int eot = tok.AddedTokens["<|eot_id|>"];
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            $"{{\"added_tokens_decoder\": {{\"{eot}\": {{\"content\": \"<|eot_id|>\"}}, \"{eot + 1000}\": {{\"content\": \"<|audio_eos|>\"}}}}, \"chat_template\": \"{{{{ messages }}}}\"}}");
        var r = TokenizerConfigCheck.Check(json, tok);
        var error = Assert.Single(r.Errors);
        Assert.Contains($"<|audio_eos|> has id {eot + 1000}", error);
        Assert.Contains("carries a chat template", Assert.Single(r.Notes));

        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{}");
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), "{\"pad_token\": {\"content\": \"<|no_such_token|>\"}, \"eos_token\": \"<|eot_id|>\"}");
        Assert.Contains("pad_token is <|no_such_token|>", Assert.Single(TokenizerConfigCheck.Check(json, tok).Errors));
    }
}
