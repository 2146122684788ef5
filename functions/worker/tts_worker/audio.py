"""Audio assembly: pieces joined with short pauses, encoded as a 16-bit PCM WAV in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import soundfile as sf

PIECE_PAUSE_S = 0.2


def join_pieces(
    waveforms: Sequence[npt.NDArray[np.float32]], *, sampling_rate: int, pause_s: float = PIECE_PAUSE_S
) -> npt.NDArray[np.float32]:
    """One waveform: the pieces in order with `pause_s` of silence between them."""
    if not waveforms:
        return np.zeros(0, dtype=np.float32)
    silence = np.zeros(round(pause_s * sampling_rate), dtype=np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    for index, waveform in enumerate(waveforms):
        if index:
            parts.append(silence)
        parts.append(np.asarray(waveform, dtype=np.float32))
    return np.concatenate(parts)


def to_pcm16(waveform: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """Clip to [-1, 1] and scale (libsndfile wraps out-of-range floats instead of clipping)."""
    clean = np.nan_to_num(np.asarray(waveform, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.round(np.clip(clean, -1.0, 1.0) * 32767.0).astype(np.int16)


def encode_wav(waveform: npt.NDArray[np.floating], *, sampling_rate: int) -> bytes:
    """A mono 16-bit PCM WAV file as bytes; the same samples always give the same bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, to_pcm16(waveform), sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
