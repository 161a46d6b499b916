namespace HiggsCluster.Training.Text;

/// <summary>
/// Ids of the special tokens the Higgs ChatML template uses, looked up by name in the loaded vocabulary
/// (never hard-coded, so a vocabulary with other ids still works, and one lacking a name fails early).
/// </summary>
public sealed record HiggsSpecialTokens(
    int BeginOfText, int EndOfText, int StartHeader, int EndHeader, int EomId, int EotId,
    int AudioBos, int AudioEos, int AudioOutBos, int Audio, int AudioOut, int Recipient)
{
    public const string BeginOfTextName = "<|begin_of_text|>";
    public const string EndOfTextName = "<|end_of_text|>";
    public const string StartHeaderName = "<|start_header_id|>";
    public const string EndHeaderName = "<|end_header_id|>";
    public const string EomName = "<|eom_id|>";
    public const string EotName = "<|eot_id|>";
    public const string AudioBosName = "<|audio_bos|>";
    public const string AudioEosName = "<|audio_eos|>";
    public const string AudioOutBosName = "<|audio_out_bos|>";
    public const string AudioName = "<|AUDIO|>";
    public const string AudioOutName = "<|AUDIO_OUT|>";
    public const string RecipientName = "<|recipient|>";

    public static HiggsSpecialTokens From(TextTokenizer tok)
    {
        var names = new[]
        {
            BeginOfTextName, EndOfTextName, StartHeaderName, EndHeaderName, EomName, EotName,
            AudioBosName, AudioEosName, AudioOutBosName, AudioName, AudioOutName, RecipientName,
        };
        var missing = names.Where(n => !tok.AddedTokens.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException(
                $"tokenizer {tok.Source} lacks the Higgs special tokens {string.Join(", ", missing)} (a stock Llama-3 file? see scripts/fetch-test-assets.sh)");
        int Id(string n) => tok.AddedTokens[n];
        return new HiggsSpecialTokens(Id(BeginOfTextName), Id(EndOfTextName), Id(StartHeaderName), Id(EndHeaderName),
            Id(EomName), Id(EotName), Id(AudioBosName), Id(AudioEosName), Id(AudioOutBosName), Id(AudioName),
            Id(AudioOutName), Id(RecipientName));
    }
}
