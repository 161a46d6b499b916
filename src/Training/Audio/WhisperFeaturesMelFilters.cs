namespace HiggsCluster.Training.Audio;

/// <summary>
/// Slaney-scale, Slaney-normalised triangular mel filters, computed in float64 like transformers'
/// <c>mel_filter_bank(norm="slaney", mel_scale="slaney")</c> (equivalent to librosa's default).
/// </summary>
public static class WhisperMelFilters
{
    private const double MinLogHertz = 1000.0;
    private const double MinLogMel = 15.0;

    /// <summary>Hz to Slaney mel: linear (3f/200) below 1 kHz, logarithmic above.</summary>
    public static double HertzToMel(double hz)
    {
        double mel = 3.0 * hz / 200.0;
        if (hz >= MinLogHertz) mel = MinLogMel + Math.Log(hz / MinLogHertz) * (27.0 / Math.Log(6.4));
        return mel;
    }

    public static double MelToHertz(double mel)
    {
        double hz = 200.0 * mel / 3.0;
        if (mel >= MinLogMel) hz = MinLogHertz * Math.Exp(Math.Log(6.4) / 27.0 * (mel - MinLogMel));
        return hz;
    }

    /// <summary>numpy.linspace semantics: start + i*step, with the last point exactly <paramref name="stop"/>.</summary>
    public static double[] Linspace(double start, double stop, int n)
    {
        var r = new double[n];
        if (n == 1) { r[0] = start; return r; }
        double step = (stop - start) / (n - 1);
        for (int i = 0; i < n; i++) r[i] = start + i * step;
        r[n - 1] = stop;
        return r;
    }

    /// <summary>The n_mels + 2 filter corner frequencies in Hz (equally spaced in mel between fmin and fmax).</summary>
    public static double[] CornerFrequencies(int nMels, double fMin, double fMax)
    {
        var mels = Linspace(HertzToMel(fMin), HertzToMel(fMax), nMels + 2);
        return mels.Select(MelToHertz).ToArray();
    }

    /// <summary>Filters as [numFrequencyBins, nMels] in float64 (bin-major, as transformers stores them).</summary>
    public static double[,] Create(int numFrequencyBins, int nMels, double fMin, double fMax, int samplingRate)
    {
        var f = CornerFrequencies(nMels, fMin, fMax);
        // sampling_rate // 2 is an integer division upstream
        var bins = Linspace(0, samplingRate / 2, numFrequencyBins);
        var w = new double[numFrequencyBins, nMels];
        for (int b = 0; b < numFrequencyBins; b++)
        {
            for (int m = 0; m < nMels; m++)
            {
                double down = -(f[m] - bins[b]) / (f[m + 1] - f[m]);
                double up = (f[m + 2] - bins[b]) / (f[m + 2] - f[m + 1]);
                double tri = Math.Max(0.0, Math.Min(down, up));
                w[b, m] = tri * (2.0 / (f[m + 2] - f[m]));
            }
        }
        return w;
    }
}
