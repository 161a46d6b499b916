using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// The grammar every verb shares (System.CommandLine): unknown options and stray words refused, --help everywhere,
/// repeatable options keep every value, a flag never takes the next word, train's free-form config overrides, and the
/// remote verbs parsed the same way by the CLI and by the command host. In-process, no node: fast lane.
/// </summary>
[Trait("Category", "CliGrammar")]
public sealed class CliGrammarTests : IDisposable
{
    private readonly TempDir _dir = new();

    public static TheoryData<string> LocalVerbs() => new(CommandTable.Verbs.Select(v => v.Name));

    private static string[] Words(string verb, params string[] rest) => verb.Split(' ').Concat(rest).ToArray();

    [Theory]
    [MemberData(nameof(LocalVerbs))]
    public void Every_local_verb_refuses_an_unknown_option_naming_it(string verb)
    {
        var e = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(Words(verb, "--no-such-option", "x"), TextWriter.Null, TextWriter.Null));
        Assert.Contains("--no-such-option", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [MemberData(nameof(LocalVerbs))]
    public void Every_local_verb_has_help_that_exits_0_and_lists_its_options(string verb)
    {
        var o = new StringWriter();
        Assert.Equal(0, CommandTable.Dispatch(Words(verb, "--help"), o, TextWriter.Null));
        Assert.Contains($"higgs {verb}", o.ToString());
        var declared = CommandTable.Verbs.Single(v => v.Name == verb).Options().Select(x => x.Name).ToList();
        Assert.NotEmpty(declared);
        Assert.All(declared, name => Assert.Contains(name, o.ToString()));
    }

    [Fact]
    public void A_repeated_option_keeps_every_value_and_a_single_one_refuses_a_second()
    {
        var a = CommandTable.ArgsOf("golden", "check", "--area", "whisper", "--area", "collator");
        Assert.Equal(new[] { "whisper", "collator" }, a.All("area"));
        var e = Assert.Throws<CliUsageException>(() => CommandTable.ArgsOf("adapter", "merge", "--base", "a", "--base", "b"));
        Assert.Contains("--base", e.Message);
    }

    [Fact]
    public void Golden_check_with_two_areas_checks_both_and_refuses_an_area_with_no_runs()
    {
        // two areas this build does not implement: each run is reported (as skipped) under its own area
        foreach (var area in new[] { "alpha", "beta", "gamma" })
        {
            var c = Directory.CreateDirectory(Path.Combine(_dir.Path, area, "case1")).FullName;
            File.WriteAllText(Path.Combine(c, "case.json"), """{"runs": [{"name": "r1"}]}""");
        }
        var o = new StringWriter();
        Assert.Equal(0, CommandTable.Dispatch(new[] { "golden", "check", "--root", _dir.Path, "--area", "alpha", "--area", "beta" }, o, TextWriter.Null));
        var text = o.ToString();
        Assert.Contains("/alpha/case1/r1", text);
        Assert.Contains("/beta/case1/r1", text);
        Assert.DoesNotContain("/gamma/", text);
        var e = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "golden", "check", "--root", _dir.Path, "--area", "delta" }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("--area delta", e.Message);
    }

    [Fact]
    public void A_flag_never_swallows_the_next_word()
    {
        var e = Assert.Throws<CliUsageException>(() => CommandTable.ArgsOf("generate", "--greedy", "word"));
        Assert.Contains("'word'", e.Message);
        var a = CommandTable.ArgsOf("demo", "--no-train", "--out", "somewhere");
        Assert.True(a.Flag("no-train"));
        Assert.Equal("somewhere", a.Get("out"));
        Assert.False(CommandTable.ArgsOf("demo", "--no-train", "false").Flag("no-train"));
    }

    [Fact]
    public void Unknown_verbs_and_verb_groups_without_a_verb_are_usage_errors()
    {
        Assert.Contains("unknown command 'frobnicate'", Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "frobnicate" }, TextWriter.Null, TextWriter.Null)).Message);
        Assert.Contains("merge", Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "adapter" }, TextWriter.Null, TextWriter.Null)).Message);
        Assert.Contains("'stray'", Assert.Throws<CliUsageException>(() => CommandTable.ArgsOf("data", "encode", "stray")).Message);
    }

    [Fact]
    public void Train_takes_free_form_config_overrides_and_the_config_layer_refuses_unknown_keys()
    {
        var a = CommandTable.ArgsOf("train", "--config", "f.yaml", "--lr=1e-4", "--train.max_steps", "3", "--dry-run", "--train.gradient_checkpointing");
        Assert.Equal(new KeyValuePair<string, string>[] { new("lr", "1e-4"), new("train.max_steps", "3"), new("train.gradient_checkpointing", "true") }, a.Overrides);
        Assert.True(a.Flag("dry-run"));
        Assert.Equal("f.yaml", a.Get("config"));
        Assert.Contains("'stray'", Assert.Throws<CliUsageException>(() => CommandTable.ArgsOf("train", "--config", "f.yaml", "stray")).Message);

        var yaml = Path.Combine(_dir.Path, "empty.yaml");
        File.WriteAllText(yaml, "train:\n  lr: 0.001\n");
        var unknown = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "train", "--config", yaml, "--no_such_key=1" }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("no_such_key", unknown.Message);
        Assert.Contains("not a known key", unknown.Message);
        var bad = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "train", "--config", yaml, "--train.lr=fast" }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("train.lr", bad.Message);
    }

    [Fact]
    public void Remote_verbs_refuse_unknown_options_and_missing_arguments_with_exit_2_before_connecting()
    {
        // the target has no command host: a refusal that came after a connect attempt would be exit 3
        foreach (var words in new[] { new[] { "run", "status", "r1", "--bogus" }, new[] { "run", "status" }, new[] { "run", "stop", "r1", "extra" }, new[] { "run", "frob" } })
        {
            var err = new StringWriter();
            Assert.Equal(ExitCodes.Usage, PbmCommand.Run(new[] { "127.0.0.1:1" }.Concat(words).ToArray(), TextWriter.Null, err));
            Assert.Single(err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        var help = new StringWriter();
        Assert.Equal(ExitCodes.Ok, PbmCommand.Run(new[] { "127.0.0.1:1", "run", "logs", "--help" }, help, TextWriter.Null));
        Assert.Contains("run logs <run-id>", help.ToString());
        Assert.Contains("--follow", help.ToString());
    }

    [Fact]
    public void The_command_host_parses_with_the_same_grammar_and_takes_only_resolved_keys_for_submit()
    {
        var (c, a, refusal) = RemoteGrammar.ParseHost(new[] { "run", "logs", "r1", "--tail", "5", "--follow" });
        Assert.Null(refusal);
        Assert.Equal("logs", c!.Name);
        Assert.Equal(new[] { "r1" }, a!.Positional);
        Assert.Equal(5, a.Int("tail", 0));
        Assert.True(a.Flag("follow"));
        Assert.Contains("--bogus", RemoteGrammar.ParseHost(new[] { "run", "logs", "r1", "--bogus" }).Refusal);
        // client options are never sent, so the host does not know them
        Assert.Contains("--json", RemoteGrammar.ParseHost(new[] { "run", "list", "--json" }).Refusal);
        Assert.NotNull(RemoteGrammar.ParseHost(new[] { "run", "submit", "--lr=1e-4" }).Refusal);
        Assert.Null(RemoteGrammar.ParseHost(new[] { "run", "submit", "--resolved=train.lr=1e-4", "--run-id", "x" }).Refusal);
    }

    [Fact]
    public void Client_options_stand_anywhere_and_the_words_sent_are_the_commands_own()
    {
        var p = RemoteGrammar.ParseClient(new[] { "--json", "run", "logs", "r1", "--timeout", "5", "--tail", "3" });
        Assert.False(p.Help);
        var client = RemoteGrammar.ClientOptions(p.Result);
        Assert.Equal("true", client["json"]);
        Assert.Equal("5", client["timeout"]);
        Assert.Equal(new[] { "r1", "--tail", "3" }, RemoteGrammar.Words(p.Command!, p.Args!));
    }

    public void Dispose() => _dir.Dispose();
}
