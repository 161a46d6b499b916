using System.Reflection.PortableExecutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace HiggsCluster.Tests.Source;

/// <summary>
/// Compiles C# sources with Roslyn against the assemblies this test runs with and lists every conversion to
/// TorchSharp.Scalar that goes through one of Scalar's conversion operators (implicit at an argument, or a cast).
/// Such a Scalar is a temporary nobody holds: TorchSharp 0.107 passes its handle to libtorch without keeping it
/// alive, so the finalizer thread can free it while libtorch reads it (see `higgs-bench scalar-race`).
/// </summary>
internal static class ScalarConversionFinder
{
    // the implicit usings of Microsoft.NET.Sdk (ImplicitUsings=enable in Directory.Build.props)
    private const string ImplicitUsings = """
        global using global::System;
        global using global::System.Collections.Generic;
        global using global::System.IO;
        global using global::System.Linq;
        global using global::System.Net.Http;
        global using global::System.Threading;
        global using global::System.Threading.Tasks;
        """;

    // partial methods that a source generator implements (GeneratedRegex); nothing else is tolerated
    private static readonly HashSet<string> GeneratorGaps = ["CS8795"];

    public sealed record Result(IReadOnlyList<string> Sites, IReadOnlyList<string> Errors);

    /// <summary>Every project under <paramref name="srcRoot"/>: one compilation per .csproj, named as its assembly.</summary>
    public static Result ScanProjects(string srcRoot)
    {
        var sites = new List<string>();
        var errors = new List<string>();
        foreach (var proj in Directory.GetFiles(srcRoot, "*.csproj", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var dir = Path.GetDirectoryName(proj)!;
            var files = Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
                .Where(f => !IsBuildOutput(Path.GetRelativePath(dir, f))).Order(StringComparer.Ordinal);
            var r = Scan(AssemblyName(proj), files.Select(f => (Path.GetRelativePath(srcRoot, f), File.ReadAllText(f))), Path.GetFileNameWithoutExtension(proj));
            sites.AddRange(r.Sites);
            errors.AddRange(r.Errors);
        }
        return new Result(sites, errors);
    }

    public static Result Scan(string assemblyName, IEnumerable<(string Path, string Text)> sources, string? project = null)
    {
        var parse = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Preview);
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, parse, s.Path)).ToList();
        trees.Add(CSharpSyntaxTree.ParseText(ImplicitUsings, parse, "ImplicitUsings.g.cs"));
        var compilation = CSharpCompilation.Create(assemblyName, trees, References(assemblyName, project),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true,
                nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && !GeneratorGaps.Contains(d.Id))
            .Select(d => $"{assemblyName}: {d}").ToList();
        var scalar = compilation.GetTypeByMetadataName("TorchSharp.Scalar");
        if (scalar == null) return new Result([], errors); // a project without TorchSharp makes no Scalar

        var sites = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var tree in trees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                // implicit conversions: the conversion the compiler applied to this expression
                if (node is ExpressionSyntax e && ViaScalarOperator(model.GetConversion(e).MethodSymbol, scalar))
                    sites.Add(Where(e));
                // casts and anything the first pass cannot see: the operation tree of each body
                if (node is not (BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or ArrowExpressionClauseSyntax
                    or EqualsValueClauseSyntax or GlobalStatementSyntax or AnonymousFunctionExpressionSyntax)) continue;
                var op = model.GetOperation(node);
                if (op == null) continue;
                foreach (var o in op.DescendantsAndSelf())
                {
                    if (o is IConversionOperation c && ViaScalarOperator(c.OperatorMethod, scalar)) sites.Add(Where(c.Syntax));
                    // a TorchSharp method or operator that takes the number and converts it inside
                    else if (Called(o) is { } m && SymbolEqualityComparer.Default.Equals(m.ContainingAssembly, scalar.ContainingAssembly)
                             && TorchScalarTemporaries.Contains(Key(m)))
                        sites.Add(Where(o.Syntax) + $"  [{m.ContainingType.Name}.{m.Name} converts a number to a Scalar inside TorchSharp]");
                }
            }
        }
        return new Result([.. sites], errors);
    }

    private static IMethodSymbol? Called(IOperation o)
    {
        var m = o switch
        {
            IInvocationOperation i => i.TargetMethod,
            IObjectCreationOperation c => c.Constructor,
            IBinaryOperation b => b.OperatorMethod,
            IUnaryOperation u => u.OperatorMethod,
            ICompoundAssignmentOperation a => a.OperatorMethod,
            IMethodReferenceOperation r => r.Method,
            _ => null,
        };
        return m is null ? null : (m.ReducedFrom ?? m).OriginalDefinition;
    }

    /// <summary>The key <see cref="TorchScalarTemporaries.Key"/> gives the same method through reflection.</summary>
    private static string Key(IMethodSymbol m) =>
        $"{TypeKey(m.ContainingType)}::{m.MetadataName}({string.Join(",", m.Parameters.Select(p => TypeName(p.Type) + (p.RefKind == RefKind.None ? "" : "&")))})";

    private static string TypeKey(INamedTypeSymbol t) => t.ContainingType is { } outer
        ? $"{TypeKey(outer)}+{t.MetadataName}"
        : t.ContainingNamespace is { IsGlobalNamespace: false } ns ? $"{ns.ToDisplayString()}.{t.MetadataName}" : t.MetadataName;

    private static string TypeName(ITypeSymbol t) => t switch
    {
        IArrayTypeSymbol a => TypeName(a.ElementType) + (a.Rank == 1 ? "[]" : $"[{new string(',', a.Rank - 1)}]"),
        IPointerTypeSymbol p => TypeName(p.PointedAtType) + "*",
        _ => t.MetadataName,
    };

    private static bool ViaScalarOperator(IMethodSymbol? m, INamedTypeSymbol scalar) =>
        m is { MethodKind: MethodKind.Conversion } && SymbolEqualityComparer.Default.Equals(m.ContainingType, scalar);

    private static string Where(SyntaxNode n)
    {
        var span = n.GetLocation().GetLineSpan();
        return $"{span.Path}:{span.StartLinePosition.Line + 1}: {n}";
    }

    private static bool IsBuildOutput(string relative) =>
        relative.StartsWith("bin" + Path.DirectorySeparatorChar, StringComparison.Ordinal)
        || relative.StartsWith("obj" + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static string AssemblyName(string csproj)
    {
        var text = File.ReadAllText(csproj);
        var m = System.Text.RegularExpressions.Regex.Match(text, "<AssemblyName>([^<]+)</AssemblyName>");
        return m.Success ? m.Groups[1].Value : Path.GetFileNameWithoutExtension(csproj);
    }

    private static readonly Lazy<IReadOnlyList<(string Name, bool Framework, MetadataReference Ref)>> All = new(LoadReferences);

    /// <summary>
    /// The platform's assemblies, plus what <paramref name="project"/> depends on (the closure of its entry in the tests'
    /// deps.json: what it compiles against, no more, or an extension method of an unrelated package could bind
    /// instead of the one the real build uses); every assembly beside the tests for a probe (project null).
    /// </summary>
    private static IReadOnlyList<MetadataReference> References(string assemblyName, string? project)
    {
        var deps = project is null ? null : Dependencies(project, assemblyName);
        return [.. All.Value.Where(r => !string.Equals(r.Name, assemblyName, StringComparison.OrdinalIgnoreCase)
            && (r.Framework || deps is null || deps.Contains(r.Name))).Select(r => r.Ref)];
    }

    private static HashSet<string> Dependencies(string project, string assemblyName)
    {
        var depsFile = Directory.GetFiles(AppContext.BaseDirectory, "HiggsCluster.Tests.deps.json").Single();
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(depsFile));
        var target = doc.RootElement.GetProperty("targets").GetProperty(doc.RootElement.GetProperty("runtimeTarget").GetProperty("name").GetString()!);
        var libs = target.EnumerateObject().ToDictionary(p => p.Name, p => p.Value, StringComparer.OrdinalIgnoreCase);
        var byName = libs.Keys.ToDictionary(k => k[..k.IndexOf('/')], k => k, StringComparer.OrdinalIgnoreCase);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        // a library is listed under its project name, an executable under its assembly name
        var todo = new Stack<string>([byName.GetValueOrDefault(project) ?? byName[assemblyName]]);
        while (todo.TryPop(out var lib))
        {
            if (!seen.Add(lib)) continue;
            var e = libs[lib];
            if (e.TryGetProperty("runtime", out var rt))
                foreach (var f in rt.EnumerateObject()) names.Add(Path.GetFileNameWithoutExtension(f.Name));
            if (e.TryGetProperty("dependencies", out var d))
                foreach (var dep in d.EnumerateObject())
                    if (libs.ContainsKey($"{dep.Name}/{dep.Value.GetString()}")) todo.Push($"{dep.Name}/{dep.Value.GetString()}");
        }
        return names;
    }

    private static IReadOnlyList<(string, bool, MetadataReference)> LoadReferences()
    {
        var here = Path.GetFullPath(AppContext.BaseDirectory);
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(f => !Path.GetFullPath(f).StartsWith(here, StringComparison.Ordinal)).ToList();
        var names = new HashSet<string>(platform.Select(Path.GetFileNameWithoutExtension)!, StringComparer.OrdinalIgnoreCase);
        var local = Directory.GetFiles(here, "*.dll").Where(f => !names.Contains(Path.GetFileNameWithoutExtension(f)));
        return [.. platform.Where(IsManaged).Select(f => (Path.GetFileNameWithoutExtension(f), true, (MetadataReference)MetadataReference.CreateFromFile(f))),
            .. local.Where(IsManaged).Select(f => (Path.GetFileNameWithoutExtension(f), false, (MetadataReference)MetadataReference.CreateFromFile(f)))];
    }

    private static bool IsManaged(string file)
    {
        try
        {
            using var pe = new PEReader(File.OpenRead(file));
            return pe.HasMetadata;
        }
        catch (BadImageFormatException) { return false; }
    }
}
