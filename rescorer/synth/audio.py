"""Synthesized speech with pink noise at a fixed SNR (flite + numpy).

The recipe behind ``data/ptb-tts`` (and reproduced bit-exactly here):

* speech: ``flite -voice V -t TEXT -o out.wav`` (Debian's flite; the voices
  ``slt``, ``rms``, ``awb`` are 16 kHz mono 16-bit);
* noise: Gaussian white noise from ``numpy.random.default_rng(seed)``,
  shaped in the FFT domain to a 1/f power spectrum (amplitude 1/sqrt(f),
  DC removed); ``seed`` = the first 8 bytes (little endian) of
  SHA-256(``"<base seed>:<uttid>"``), so every utterance has its own noise
  independent of order and job split;
* SNR: speech power = mean power of the 20 ms frames of the clean signal
  within 40 dB of its loudest frame; noise power = its mean power over the
  whole utterance; the noise is scaled to ``snr_db`` below the speech;
* speech + noise rounded to 16 bit, both rescaled together when the peak
  would exceed 32000 (which keeps the SNR).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from rescorer.errors import AdmmqError, PathLike
from rescorer.fileio import atomic_path

FRAME_S = 0.020
SPEECH_RANGE_DB = 40.0
PEAK = 32000.0


def noise_seed(base_seed: int, uttid: str) -> int:
    """The noise generator's seed for one utterance (see the module docstring)."""
    digest = hashlib.sha256(f"{base_seed}:{uttid}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def pink_noise(n: int, rate: int, seed: int) -> np.ndarray:
    """(n,) float64 Gaussian noise with a 1/f power spectrum and no DC."""
    white = np.random.default_rng(seed).standard_normal(n)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    shape = np.zeros_like(freqs)
    shape[1:] = 1.0 / np.sqrt(freqs[1:])
    return np.fft.irfft(spectrum * shape, n)


def speech_power(x: np.ndarray, rate: int) -> float:
    """Mean power of the 20 ms frames of ``x`` ((n,) float64) within 40 dB of the loudest frame."""
    size = int(round(FRAME_S * rate))
    frames = len(x) // size
    if frames == 0:
        raise ValueError(f"signal of {len(x)} samples is shorter than one {size}-sample frame")
    power = (x[:frames * size].reshape(frames, size) ** 2).mean(axis=1)
    db = 10.0 * np.log10(np.maximum(power, 1e-12))
    return float(power[db >= db.max() - SPEECH_RANGE_DB].mean())


def add_noise(speech: np.ndarray, rate: int, snr_db: float, seed: int) -> np.ndarray:
    """(n,) int16 speech + pink noise at ``snr_db`` (speech power over noise power), 16-bit rounded."""
    x = speech.astype(np.float64)
    noise = pink_noise(len(x), rate, seed)
    gain = np.sqrt(speech_power(x, rate) / ((noise ** 2).mean() * 10.0 ** (snr_db / 10.0)))
    y = x + gain * noise
    peak = np.abs(y).max()
    if peak > PEAK:
        y *= PEAK / peak
    return np.round(y).astype(np.int16)


def read_wav(path: PathLike) -> tuple:
    """A mono 16-bit wav -> ((n,) int16 samples, sample rate)."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise AdmmqError(f"expected mono 16-bit audio, got {w.getnchannels()} channel(s) of "
                             f"{8 * w.getsampwidth()} bit", path)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy(), w.getframerate()


def write_wav(path: PathLike, samples: np.ndarray, rate: int) -> None:
    """Write (n,) int16 samples as a mono 16-bit wav (atomically)."""
    with atomic_path(path) as tmp, wave.open(os.fspath(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def flite_path() -> str:
    """The flite binary, or a one-line error saying how to install it."""
    exe = shutil.which("flite")
    if exe is None:
        raise AdmmqError("flite is not installed (Debian/Ubuntu: apt-get install flite)")
    return exe


def check_voices(voices) -> None:
    """Fail unless every voice is one ``flite -lv`` lists (or a ``.flitevox`` file).

    flite silently falls back to its default voice for an unknown name, so this is checked first.
    """
    proc = subprocess.run([flite_path(), "-lv"], capture_output=True, text=True)
    listed = proc.stdout.split(":", 1)[-1].split()
    unknown = [v for v in voices if v not in listed and not Path(v).is_file()]
    if unknown:
        raise AdmmqError(f"flite has no voice {unknown[0]!r}; available: {' '.join(listed) or '(none listed)'}")


def synthesize(text: str, voice: str) -> tuple:
    """Speak ``text`` with flite's ``voice`` -> ((n,) int16 samples, sample rate)."""
    exe = flite_path()
    with tempfile.TemporaryDirectory(prefix="admmq-flite-") as tmp:
        out = Path(tmp) / "speech.wav"
        proc = subprocess.run([exe, "-voice", voice, "-t", text, "-o", os.fspath(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise AdmmqError(f"flite -voice {voice} failed (exit {proc.returncode})"
                             + (f": {detail[-1]}" if detail else "") + "; `flite -lv` lists the voices")
        return read_wav(out)


def noisy_utterance(text: str, voice: str, uttid: str, snr_db: float, base_seed: int) -> tuple:
    """flite speech of ``text`` with the utterance's pink noise -> ((n,) int16, rate)."""
    speech, rate = synthesize(text, voice)
    return add_noise(speech, rate, snr_db, noise_seed(base_seed, uttid)), rate
