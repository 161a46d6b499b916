using System.CommandLine;
using HiggsCluster.Cli.Grammar;

namespace HiggsCluster.Cli.Commands.Options;

/// <summary>Options of <c>higgs generate</c>.</summary>
public static class GenerateCommandOptions
{
    public static IEnumerable<Option> Declare() => new Option[]
    {
        Opt.Value("base", "DIR", "the base model folder"),
        Opt.Value("adapter", "DIR", "a trained LoRA adapter"),
        Opt.Value("audio-tokenizer", "DIR", "the audio tokenizer folder"),
        Opt.Value("tokenizer", "FILE", "the text tokenizer (default: tokenizer.json in --base)"),
        Opt.Value("text", "TEXT", "what to say"),
        Opt.Value("scene", "TEXT", "scene description for the system prompt"),
        Opt.Value("reference-audio", "FILE", "voice to clone (WAV)"),
        Opt.Value("reference-text", "TEXT", "transcript of the reference audio"),
        Opt.Value("out", "FILE.wav", "the 24 kHz WAV written"),
        Opt.Value("codes-out", "FILE", "also write the audio codes (safetensors)"),
        Opt.Flag("greedy", "greedy decoding (no sampling options)"),
        Opt.Value("temperature", "T", "sampling temperature"),
        Opt.Value("top-k", "K", "sample from the K most likely codes"),
        Opt.Value("top-p", "P", "nucleus sampling mass in (0, 1]"),
        Opt.Value("ras-window", "N", "repetition-aware sampling window"),
        Opt.Value("ras-max-repeat", "M", "repetitions allowed in the window"),
        Opt.Value("seed", "S", "sampling seed"),
        Opt.Value("max-seconds", "S", "longest audio generated (default 30)"),
        Opt.Value("device", "D", "cpu or cuda[:N] (default cpu)"),
        Opt.Value("dtype", "auto|bf16|fp32", "compute dtype (default auto)"),
    };
}
