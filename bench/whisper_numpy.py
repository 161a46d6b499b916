"""numpy reference for the Whisper benchmark: the same log-mel algorithm as the C# port (whisper-large-v3 settings).

Reads clips written by `HiggsCluster.Bench whisper` (int32 count, int32 lengths, float32 samples), times passes over
all clips (best pass) (one call per clip, like transformers' numpy path) and prints clips/s. Optionally compares
the first clip's features with the C# output (raw float32 [128, 3000]).
Usage: whisper_numpy.py CLIPS_FILE REPEATS [CSHARP_FIRST_FEATURES]
"""
import sys
import time

import numpy as np

N_FFT, HOP, N_MELS, SR, N_SAMPLES = 400, 160, 128, 16000, 480000


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filters():
    corners = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), N_MELS + 2))
    bins = np.linspace(0, SR // 2, N_FFT // 2 + 1)
    lo, mid, hi = corners[:-2], corners[1:-1], corners[2:]
    up = (bins[:, None] - lo[None, :]) / (mid - lo)[None, :]
    down = (hi[None, :] - bins[:, None]) / (hi - mid)[None, :]
    w = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))[None, :]
    return w  # [bins, mels] float64


FILTERS = mel_filters()
WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def features(clip):
    x = np.zeros(N_SAMPLES, dtype=np.float32)
    n = min(len(clip), N_SAMPLES)
    x[:n] = clip[:n]
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]  # drop the last frame
    spec = np.fft.rfft(frames * WINDOW, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = FILTERS.T @ power.T  # [mels, frames]
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def main():
    path, repeats = sys.argv[1], int(sys.argv[2])
    raw = open(path, "rb").read()
    count = int(np.frombuffer(raw, dtype=np.int32, count=1)[0])
    lengths = np.frombuffer(raw, dtype=np.int32, count=count, offset=4)
    data = np.frombuffer(raw, dtype=np.float32, offset=4 + 4 * count)
    clips, off = [], 0
    for n in lengths:
        clips.append(data[off:off + n])
        off += n
    features(clips[0])  # warm-up
    passes = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for c in clips:
            features(c)
        passes.append(time.perf_counter() - t0)
    best = min(passes)  # the pass least disturbed by other processes
    print(f"numpy clips/s {count / best:.2f}")
    print("numpy pass seconds " + " ".join(f"{t:.6f}" for t in passes))
    if len(sys.argv) > 3:
        ours = np.fromfile(sys.argv[3], dtype=np.float32).reshape(N_MELS, N_SAMPLES // HOP)
        print(f"numpy max |diff| vs C# on clip 0 {np.abs(features(clips[0]) - ours).max():.3g}")


if __name__ == "__main__":
    main()
