using HiggsCluster.Cli.Grammar;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs adapter export --adapter DIR --out DIR --layout boson|transformers`: rewrites a PEFT adapter's keys for the
/// other Hugging Face layout of the base (boson <c>base_model.model.layers…</c> ↔ transformers ≥ 5.3
/// <c>base_model.model.model.layers…</c>), so PEFT finds them on that model. Tensors are copied unchanged; no base needed.
/// </summary>
public static class AdapterExportCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string Required(string key, string what) => args.Required("adapter export", key, what);
        var adapterDir = Required("adapter", "DIR");
        var outDir = Required("out", "DIR");
        WeightsLayout layout;
        try { layout = LayoutKeys.Parse(Required("layout", "boson|transformers")); }
        catch (ArgumentException e) { throw new CliUsageException($"adapter export: --layout: {e.Message}"); }
        try
        {
            var (from, n) = AdapterKeys.Convert(adapterDir, outDir, layout);
            stdout.WriteLine($"adapter export: {n} tensors from the {LayoutKeys.Name(from)} layout to the {LayoutKeys.Name(layout)} layout in {outDir}");
            return 0;
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException)
        {
            stderr.WriteLine($"higgs adapter export: {e.Message}");
            return 1;
        }
    }
}
