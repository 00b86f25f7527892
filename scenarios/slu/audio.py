"""Reading audio files: soundfile for the I/O, torchaudio for resampling, one clear error per bad file.

``torchaudio.load`` now needs TorchCodec and a system FFmpeg, so files are read with
soundfile (WAV, FLAC, OGG); any other sample rate is resampled to the corpus rate rather
than rejected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.transforms

from suite.errors import DataError

TARGET_RATE = 16000
_RESAMPLE_BUCKET = 32  # input lengths are rounded up to multiples of 32 resampling periods


def read_audio(path: Path, target_rate: int = TARGET_RATE) -> torch.Tensor:
    """Mono float32 waveform in [-1, 1] at ``target_rate``; DataError naming the file if unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: unreadable or corrupt audio ({reason})") from None
    if samples.shape[0] == 0:
        raise DataError(f"{path}: audio file holds no samples")
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    waveform = torch.from_numpy(samples.mean(axis=1))
    return resample(waveform, rate, target_rate)


def resample(waveform: torch.Tensor, rate: int, target_rate: int = TARGET_RATE) -> torch.Tensor:
    """torchaudio's band-limited sinc resampling; a no-op at the target rate."""
    if rate == target_rate:
        return waveform
    # Pad to a bucketed length: oneDNN builds a new convolution kernel for every input
    # length it sees, which made per-utterance resampling 5-20x slower. Trailing zeros
    # do not change the kept outputs (the resampler pads with zeros itself).
    length = waveform.shape[-1]
    step = _RESAMPLE_BUCKET * (int(rate) // math.gcd(int(rate), int(target_rate)))
    padded = torch.nn.functional.pad(waveform, (0, -(-length // step) * step - length))
    with torch.no_grad():
        out = _resampler(int(rate), int(target_rate))(padded)
    return out[..., : -(-int(target_rate) * length // int(rate))]


@lru_cache(maxsize=8)
def _resampler(rate: int, target_rate: int) -> torchaudio.transforms.Resample:
    """One resampler per rate pair: building the sinc kernel costs far more than applying it."""
    return torchaudio.transforms.Resample(rate, target_rate)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run many tiny tensor ops on one intra-op thread (faster, and immune to busy cores); restores the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def to_pcm16(waveform: torch.Tensor) -> np.ndarray:
    """Round a [-1, 1] float waveform to int16 samples (clipped)."""
    scaled = np.round(waveform.numpy().astype(np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)
