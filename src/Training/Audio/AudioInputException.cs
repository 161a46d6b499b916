namespace HiggsCluster.Training.Audio;

/// <summary>Audio that cannot be used as given: the message names the file (or field) and what is wrong with it.</summary>
public sealed class AudioInputException : Exception
{
    public AudioInputException(string inputName, string problem, Exception? inner = null)
        : base($"{inputName}: {problem}", inner)
    {
        InputName = inputName;
        Problem = problem;
    }

    /// <summary>The file path, or a description such as "raw_audio of sample 12".</summary>
    public string InputName { get; }
    public string Problem { get; }
}
