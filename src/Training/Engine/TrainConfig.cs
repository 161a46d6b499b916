using YamlDotNet.RepresentationModel;
using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Builds <see cref="TrainOptions"/> from, in rising precedence: a YAML file (nested maps flatten to "section.name"; a
/// list of mappings, data.manifests, becomes one JSON value whose paths are made relative to the file like the others),
/// HIGGS_SECTION__NAME environment variables, and --key=value overrides. A key may also be given by its last part
/// alone (lr, batch_size) when that is unambiguous. Unknown keys and bad values are errors naming the key.
/// </summary>
public static class TrainConfig
{
    public const string EnvPrefix = "HIGGS_";

    public static TrainOptions Load(string? yamlPath, IEnumerable<KeyValuePair<string, string>> overrides, IDictionary<string, string>? environment = null, TrainOptions? defaults = null)
    {
        var o = defaults?.Clone() ?? new TrainOptions();
        if (yamlPath is not null)
        {
            if (!File.Exists(yamlPath)) throw new TrainConfigException("--config", $"file not found: {yamlPath}");
            string baseDir = Path.GetDirectoryName(Path.GetFullPath(yamlPath))!;
            foreach (var (k, v) in FlattenYaml(yamlPath)) Apply(o, k, v, yamlPath, baseDir);
        }
        if (environment is not null)
            foreach (var (name, value) in environment.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                if (!name.StartsWith(EnvPrefix, StringComparison.Ordinal)) continue;
                var key = name[EnvPrefix.Length..].ToLowerInvariant().Replace("__", ".", StringComparison.Ordinal);
                if (!IsKnown(key)) continue; // other HIGGS_ variables belong to other tools
                Apply(o, key, value, "environment " + name, null);
            }
        foreach (var (k, v) in overrides) Apply(o, k, v, "--" + k, null);
        return o;
    }

    public static IDictionary<string, string> ProcessEnvironment() =>
        Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);

    private static bool IsKnown(string key) => Resolve(key, throwIfUnknown: false) is not null;

    private static TrainOptions.Key? Resolve(string key, bool throwIfUnknown)
    {
        var k = key.Trim().Replace('-', '_');
        var exact = TrainOptions.Keys.FirstOrDefault(x => x.Name == k);
        if (exact is not null) return exact;
        var leaf = TrainOptions.Keys.Where(x => x.Name[(x.Name.IndexOf('.') + 1)..] == k).ToList();
        if (leaf.Count == 1) return leaf[0];
        if (!throwIfUnknown) return null;
        if (leaf.Count > 1) throw new TrainConfigException(key, $"is ambiguous: {string.Join(", ", leaf.Select(x => x.Name))}");
        var near = TrainOptions.Keys.Select(x => x.Name).Where(n => n.Contains(k.Split('.')[^1], StringComparison.Ordinal)).Take(3).ToList();
        throw new TrainConfigException(key, "is not a known key" + (near.Count > 0 ? $" (did you mean {string.Join(", ", near)}?)" : " (see 'higgs train --help-keys')"));
    }

    private static readonly HashSet<string> PathKeys = new(StringComparer.Ordinal)
    {
        "data.manifest", "data.validation_manifest", "data.data_root", "data.text_tokenizer", "data.audio_tokenizer",
        "data.code_cache", "model.base_checkpoint", "train.output_dir",
    };

    private static void Apply(TrainOptions o, string key, string value, string source, string? baseDir)
    {
        TrainOptions.Key k;
        try { k = Resolve(key, throwIfUnknown: true)!; }
        catch (TrainConfigException e) { throw new TrainConfigException(e.Key, $"{e.Message[(e.Message.IndexOf(':') + 2)..]} (from {source})"); }
        // paths in a config file are relative to the file, like most tools read them
        if (baseDir is not null && PathKeys.Contains(k.Name) && value.Length > 0 && !Path.IsPathRooted(value)) value = Path.GetFullPath(Path.Combine(baseDir, value));
        try
        {
            k.Set(o, value);
            if (baseDir is not null && k.Name == "data.manifests") o.Manifests = o.Manifests.Select(c => c with { Path = Rebase(c.Path, baseDir)!, DataRoot = Rebase(c.DataRoot, baseDir) }).ToArray();
        }
        catch (TrainConfigException e) { throw new TrainConfigException(e.Key, $"{e.Message[(e.Message.IndexOf(':') + 2)..]} (from {source})"); }
    }

    private static string? Rebase(string? p, string baseDir) =>
        string.IsNullOrEmpty(p) || Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(baseDir, p));

    /// <summary>A list of mappings (data.manifests) as the JSON list the option reads; values stay text, the option parses them.</summary>
    private static string MappingsAsJson(string key, YamlSequenceNode seq)
    {
        var a = new System.Text.Json.Nodes.JsonArray();
        foreach (var item in seq.Children)
        {
            if (item is not YamlMappingNode m) throw new TrainConfigException(key, "list items must all be mappings, or all plain values");
            var o = new System.Text.Json.Nodes.JsonObject();
            foreach (var (kn, vn) in m.Children)
                o[((YamlScalarNode)kn).Value!] = (vn as YamlScalarNode)?.Value ?? throw new TrainConfigException(key, $"'{((YamlScalarNode)kn).Value}' must be a plain value");
            a.Add(o);
        }
        return a.ToJsonString();
    }

    private static IEnumerable<KeyValuePair<string, string>> FlattenYaml(string path)
    {
        var ys = new YamlStream();
        try
        {
            CountAliases(path);
            using var r = new StreamReader(path);
            ys.Load(r);
        }
        catch (YamlDotNet.Core.YamlException e) { throw new TrainConfigException("--config", $"{path}: YAML error at line {e.Start.Line}: {e.Message}"); }
        if (ys.Documents.Count == 0) yield break;
        if (ys.Documents[0].RootNode is not YamlMappingNode root) throw new TrainConfigException("--config", $"{path}: the top level must be a mapping of keys");
        var result = new List<KeyValuePair<string, string>>();
        int visited = 0;
        void Walk(YamlMappingNode m, string prefix)
        {
            foreach (var (kn, vn) in m.Children)
            {
                if (++visited > MaxKeys)
                    throw new TrainConfigException("--config", $"{path}: more than {MaxKeys} keys after expanding aliases, the limit for a config file (config keys)");
                var key = prefix + ((YamlScalarNode)kn).Value;
                switch (vn)
                {
                    case YamlMappingNode mm: Walk(mm, key + "."); break;
                    case YamlSequenceNode seq when seq.Children.Count > 0 && seq.Children[0] is YamlMappingNode: result.Add(new(key, MappingsAsJson(key, seq))); break;
                    case YamlSequenceNode seq: result.Add(new(key, string.Join(key.EndsWith("sample_texts", StringComparison.Ordinal) ? "\n" : ",", seq.Children.Select(c => (c as YamlScalarNode)?.Value ?? throw new TrainConfigException(key, "list items must be plain values"))))); break;
                    case YamlScalarNode s: result.Add(new(key, s.Value ?? "")); break;
                }
            }
        }
        Walk(root, "");
        foreach (var kv in result) yield return kv;
    }

    /// <summary>Config files are small: these bound what a YAML alias bomb (aliases of aliases) can expand into.</summary>
    public const int MaxAliases = 64, MaxKeys = 10_000;

    /// <summary>Counts alias uses from the event stream, before the document is built or walked.</summary>
    private static void CountAliases(string path)
    {
        using var r = new StreamReader(path);
        var parser = new YamlDotNet.Core.Parser(r);
        int aliases = 0;
        while (parser.MoveNext())
            if (parser.Current is YamlDotNet.Core.Events.AnchorAlias && ++aliases > MaxAliases)
                throw new TrainConfigException("--config", $"{path}: more than {MaxAliases} YAML aliases (*name), the limit for a config file (yaml aliases)");
    }
}
