using System.Text.Json;
using System.Text.Json.Nodes;

namespace HiggsCluster.Training.Text;

/// <summary>
/// Reads the tokenizer_config.json (and special_tokens_map.json) that Hugging Face keeps beside tokenizer.json, where
/// it matters: the Higgs special tokens must have the same ids in both files (a mismatch means files of two revisions
/// were mixed, and prompts and labels would use the wrong ids), and a chat template is reported as unused (prompts
/// are built by the ChatML preparer, as boson's code builds them). Missing files are fine: tokenizer.json alone is
/// enough.
/// </summary>
public static class TokenizerConfigCheck
{
    public sealed record Result(IReadOnlyList<string> Errors, IReadOnlyList<string> Notes);

    public static Result Check(string tokenizerJson, TextTokenizer tokenizer)
    {
        var errors = new List<string>(); var notes = new List<string>();
        var dir = Path.GetDirectoryName(Path.GetFullPath(tokenizerJson))!;
        var configPath = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            JsonObject? config = null;
            try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject; }
            catch (JsonException e) { errors.Add($"{configPath}: not valid JSON ({e.Message})"); }
            if (config?["added_tokens_decoder"] is JsonObject decoder)
                foreach (var (idText, entry) in decoder)
                {
                    var content = entry?["content"]?.GetValue<string>();
                    if (content is null || !int.TryParse(idText, out var id)) continue;
                    if (tokenizer.AddedTokens.TryGetValue(content, out var mine) && mine != id)
                        errors.Add($"{configPath}: {content} has id {id}, {tokenizerJson} gives it {mine} (files of two revisions mixed?)");
                }
            if (config?["chat_template"] is not null)
                notes.Add($"{configPath} carries a chat template; it is not used: prompts and samples are built by the ChatML preparer, as boson's code builds them");
        }
        var mapPath = Path.Combine(dir, "special_tokens_map.json");
        if (File.Exists(mapPath))
        {
            try
            {
                if (JsonNode.Parse(File.ReadAllText(mapPath)) is JsonObject map)
                    foreach (var (role, value) in map)
                    {
                        var content = value is JsonObject o ? o["content"]?.GetValue<string>() : value is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
                        if (content is not null && content.StartsWith("<|", StringComparison.Ordinal) && !tokenizer.AddedTokens.ContainsKey(content))
                            errors.Add($"{mapPath}: {role} is {content}, which {tokenizerJson} does not define");
                    }
            }
            catch (JsonException e) { errors.Add($"{mapPath}: not valid JSON ({e.Message})"); }
        }
        return new Result(errors, notes);
    }
}
