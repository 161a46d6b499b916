using System.Text.Json;
using System.Text.Json.Nodes;
using HiggsCluster.Training.Audio;

namespace HiggsCluster.Training.Demo;

/// <summary>What <see cref="DemoDataset.Write"/> produced.</summary>
public sealed record DemoDatasetFiles(string Folder, string Manifest, IReadOnlyList<string> Texts, int Entries, double AudioSeconds);

/// <summary>
/// A small speech-like ChatML dataset made entirely by our own code: synthetic voices as WAV files at several
/// sample rates, and a JSONL manifest mixing the three sample shapes Higgs users train on — TTS (text → audio),
/// voice cloning (an untrained reference audio-out, then the trained target) and audio understanding (audio-in → text).
/// Deterministic for a seed.
/// </summary>
public static class DemoDataset
{
    private static readonly string[] Words =
    {
        "the", "quiet", "river", "runs", "past", "old", "stone", "houses", "morning", "light", "falls", "on", "green",
        "fields", "a", "small", "bird", "sings", "near", "window", "we", "walk", "slowly", "home", "after", "rain",
        "clear", "sky", "tells", "story", "of", "summer", "wind", "carries", "voices", "across", "hills",
    };

    private static readonly int[] Rates = { 16000, 22050, 24000, 44100 };

    public const string TtsSystemPrompt = "Generate audio following instruction.";

    public static DemoDatasetFiles Write(string folder, int entries = 24, int speakers = 3, int seed = 0)
    {
        Directory.CreateDirectory(Path.Combine(folder, "audio"));
        var rng = new Random(seed);
        var texts = new List<string> { TtsSystemPrompt };
        double seconds = 0;
        int clip = 0;

        string Sentence()
        {
            int n = rng.Next(4, 10);
            var s = string.Join(' ', Enumerable.Range(0, n).Select(_ => Words[rng.Next(Words.Length)])) + ".";
            s = char.ToUpperInvariant(s[0]) + s[1..];
            texts.Add(s);
            return s;
        }

        JsonObject Audio(int speaker, string text)
        {
            // duration follows the text, like speech does: ~0.35 s per word
            double dur = 0.6 + 0.35 * text.Split(' ').Length;
            int rate = Rates[rng.Next(Rates.Length)];
            var samples = SyntheticSpeech.Generate(dur, rate, seed * 7919 + speaker * 104729 + clip);
            var name = $"audio/spk{speaker:D2}_{clip++:D4}.wav";
            WavWriter.Write(Path.Combine(folder, name), samples, rate, WavSampleFormat.Pcm16);
            seconds += dur;
            return new JsonObject { ["type"] = "audio", ["audio_url"] = name };
        }

        var manifest = Path.Combine(folder, "manifest.jsonl");
        using (var w = new StreamWriter(manifest))
        {
            for (int i = 0; i < entries; i++)
            {
                int spk = i % speakers;
                JsonObject entry;
                switch (i % 4)
                {
                    case 0 or 1: // TTS
                    {
                        var text = Sentence();
                        entry = new JsonObject
                        {
                            ["messages"] = new JsonArray(
                                new JsonObject { ["role"] = "system", ["content"] = TtsSystemPrompt },
                                new JsonObject { ["role"] = "user", ["content"] = text },
                                new JsonObject { ["role"] = "assistant", ["content"] = Audio(spk, text) }),
                            ["speaker"] = $"spk{spk:D2}",
                        };
                        break;
                    }
                    case 2: // voice clone: reference turn is context only (start_index skips it)
                    {
                        var refText = Sentence();
                        var text = Sentence();
                        entry = new JsonObject
                        {
                            ["messages"] = new JsonArray(
                                new JsonObject { ["role"] = "system", ["content"] = TtsSystemPrompt },
                                new JsonObject { ["role"] = "user", ["content"] = refText },
                                new JsonObject { ["role"] = "assistant", ["content"] = Audio(spk, refText) },
                                new JsonObject { ["role"] = "user", ["content"] = text },
                                new JsonObject { ["role"] = "assistant", ["content"] = Audio(spk, text) }),
                            ["start_index"] = 4,
                            ["speaker"] = $"spk{spk:D2}",
                        };
                        break;
                    }
                    default: // audio understanding: transcribe an audio-in
                    {
                        var text = Sentence();
                        entry = new JsonObject
                        {
                            ["messages"] = new JsonArray(
                                new JsonObject
                                {
                                    ["role"] = "user",
                                    ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "Transcribe:" }, Audio(spk, text)),
                                },
                                new JsonObject { ["role"] = "assistant", ["content"] = text }),
                        };
                        break;
                    }
                }
                w.WriteLine(entry.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            }
        }
        texts.Add("Transcribe:");
        return new DemoDatasetFiles(folder, manifest, texts, entries, seconds);
    }
}
