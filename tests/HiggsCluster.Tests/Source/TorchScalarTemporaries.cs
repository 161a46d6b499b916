using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;

namespace HiggsCluster.Tests.Source;

/// <summary>
/// The TorchSharp methods that turn a C# number into a Scalar nobody holds: their IL converts a number to a Scalar
/// (<c>op_Implicit</c>, <c>ToScalar</c>) and never disposes it, or they call such a method (e.g. <c>Tensor * double</c>
/// → <c>mul((Scalar)d)</c>, <c>functional.elu(x, 1.0)</c> → <c>x.elu(1.0)</c> → <c>elu((Scalar)1.0, …)</c>). Calling one
/// from src/ has the same hazard as converting in src/, only hidden inside TorchSharp, so the scan treats it the same.
/// </summary>
internal static class TorchScalarTemporaries
{
    private static readonly Lazy<HashSet<string>> Keys = new(Build);

    public static bool Contains(string key) => Keys.Value.Contains(key);

    public static int Count => Keys.Value.Count;

    /// <summary>Declaring type (nested types with '+'), name and parameter type names: the same key Roslyn's side builds.</summary>
    public static string Key(MethodBase m) =>
        $"{m.DeclaringType!.FullName}::{m.Name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))})";

    private static HashSet<string> Build()
    {
        var asm = typeof(Scalar).Assembly;
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var methods = asm.GetTypes().SelectMany(t => t.GetMethods(all).Cast<MethodBase>().Concat(t.GetConstructors(all))).ToList();
        var calls = new Dictionary<MethodBase, List<MethodBase>>();
        var unsafeSet = new HashSet<MethodBase>();
        foreach (var m in methods)
        {
            var callees = Callees(m);
            calls[m] = callees;
            bool converts = callees.Any(c => IsNumberToScalar(c));
            bool disposes = callees.Any(c => c.DeclaringType == typeof(Scalar) && c.Name == "Dispose");
            if (converts && !disposes) unsafeSet.Add(m);
        }
        // callers of hazardous methods are hazardous, up to a fixed point
        bool grew = true;
        while (grew)
        {
            grew = false;
            foreach (var (m, callees) in calls)
                if (!unsafeSet.Contains(m) && callees.Any(unsafeSet.Contains)) grew |= unsafeSet.Add(m);
        }
        return unsafeSet.Select(Key).ToHashSet(StringComparer.Ordinal);
    }

    private static bool IsNumberToScalar(MethodBase c) =>
        (c.DeclaringType == typeof(Scalar) && c.Name == "op_Implicit")
        || (c.DeclaringType?.Name == "ScalarExtensionMethods" && c.Name == "ToScalar");

    private static readonly Dictionary<short, OpCode> OpCodeByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>The methods <paramref name="m"/>'s IL calls (call, callvirt, newobj, ldftn) that resolve into TorchSharp.</summary>
    private static List<MethodBase> Callees(MethodBase m)
    {
        var result = new List<MethodBase>();
        byte[]? il;
        try { il = m.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or NotSupportedException) { return result; }
        if (il is null) return result;
        var generics = (m.DeclaringType?.IsGenericType ?? false) ? m.DeclaringType.GetGenericArguments() : null;
        var methodGenerics = m.IsGenericMethod ? m.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE && i + 1 < il.Length ? (short)(0xFE00 | il[i + 1]) : il[i];
            if (!OpCodeByValue.TryGetValue(value, out var op)) break; // not IL we can follow: stop rather than misread
            i += op.Size;
            if (op.OperandType == OperandType.InlineMethod && i + 4 <= il.Length)
            {
                int token = BitConverter.ToInt32(il, i);
                try
                {
                    var callee = m.Module.ResolveMethod(token, generics, methodGenerics);
                    if (callee?.Module.Assembly == typeof(Scalar).Assembly) result.Add(callee is MethodInfo { IsGenericMethod: true } g ? g.GetGenericMethodDefinition() : callee!);
                }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or MissingMethodException) { }
            }
            i += OperandSize(op.OperandType, il, i);
        }
        return result;
    }

    private static int OperandSize(OperandType t, byte[] il, int at) => t switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
        _ => 4,
    };
}
