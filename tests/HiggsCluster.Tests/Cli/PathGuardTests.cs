using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Tests.Audio;
using Xunit;

namespace HiggsCluster.Tests.Cli;

[Trait("Category", "Cli")]
public sealed class PathGuardTests : IDisposable
{
    private readonly TempDir _dir = new();

    [Fact]
    public void Dot_dot_after_a_link_is_applied_to_the_link_target_as_the_kernel_does()
    {
        var root = Directory.CreateDirectory(_dir.File("root")).FullName;
        var deep = Directory.CreateDirectory(_dir.File("outside/deep")).FullName;
        File.CreateSymbolicLink(Path.Combine(root, "a"), deep);
        // lexically root/x, really outside/x
        var tricky = Path.Combine(root, "a", "..", "x");
        Assert.Equal(_dir.File("outside/x"), PathGuard.RealPath(tricky));
        Assert.NotNull(PathGuard.Check("k", tricky, new[] { root }, "roots"));
        Assert.Null(PathGuard.Check("k", Path.Combine(root, "sub", "..", "x"), new[] { root }, "roots"));
    }

    [Fact]
    public void Relative_and_chained_links_are_resolved_and_a_sibling_prefix_is_not_inside()
    {
        var root = Directory.CreateDirectory(_dir.File("data")).FullName;
        Directory.CreateDirectory(_dir.File("data-evil"));
        Directory.CreateDirectory(Path.Combine(root, "real"));
        File.CreateSymbolicLink(Path.Combine(root, "rel"), "real");                 // stays inside
        File.CreateSymbolicLink(Path.Combine(root, "hop1"), "../data/rel");          // chain, stays inside
        File.CreateSymbolicLink(Path.Combine(root, "out"), "../data-evil");          // leaves
        Assert.Null(PathGuard.Check("k", Path.Combine(root, "rel", "f"), new[] { root }, "roots"));
        Assert.Equal(Path.Combine(root, "real", "f"), PathGuard.RealPath(Path.Combine(root, "hop1", "f")));
        Assert.NotNull(PathGuard.Check("k", Path.Combine(root, "out", "f"), new[] { root }, "roots"));
        Assert.NotNull(PathGuard.Check("k", _dir.File("data-evil/f"), new[] { root }, "roots"));
    }

    [Fact]
    public void A_link_loop_is_an_error_not_a_hang()
    {
        var root = Directory.CreateDirectory(_dir.File("loop")).FullName;
        File.CreateSymbolicLink(Path.Combine(root, "a"), "b");
        File.CreateSymbolicLink(Path.Combine(root, "b"), "a");
        Assert.Contains("too many levels of symbolic links", PathGuard.Check("k", Path.Combine(root, "a", "f"), new[] { root }, "roots"));
    }

    public void Dispose() => _dir.Dispose();
}
