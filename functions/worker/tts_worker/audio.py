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


class WavAssembler:
    """Pieces in, in any order; one WAV out, the same bytes as `encode_wav(join_pieces(...))`.

    A piece is kept only as 16-bit PCM, and only until the pieces before it have arrived: a 100,000-character
    text never holds its float32 audio, only the WAV it is writing (2 bytes per sample) and the pieces that
    came early.
    """

    def __init__(self, *, total: int, sampling_rate: int, pause_s: float = PIECE_PAUSE_S) -> None:
        if total < 1:
            raise ValueError("a WAV needs at least one piece")
        self._total = total
        self._sampling_rate = sampling_rate
        self._silence = np.zeros(round(pause_s * sampling_rate), dtype=np.int16)
        self._early: dict[int, npt.NDArray[np.int16]] = {}
        self._next = 0
        self._frames = 0
        self._buffer = io.BytesIO()
        self._file = sf.SoundFile(
            self._buffer, mode="w", samplerate=sampling_rate, channels=1, format="WAV", subtype="PCM_16"
        )

    @property
    def total(self) -> int:
        return self._total

    @property
    def pieces_done(self) -> int:
        return self._next + len(self._early)

    @property
    def complete(self) -> bool:
        return self._next == self._total

    @property
    def duration_s(self) -> float:
        return self._frames / self._sampling_rate

    def add(self, position: int, waveform: npt.NDArray[np.floating]) -> None:
        """Piece number `position` (0-based) of `total`; each one exactly once."""
        if not (self._next <= position < self._total) or position in self._early:
            raise ValueError(f"piece {position} is out of range or was added before")
        self._early[position] = to_pcm16(waveform)
        while self._next in self._early:
            if self._next:
                self._write(self._silence)
            self._write(self._early.pop(self._next))
            self._next += 1

    def _write(self, samples: npt.NDArray[np.int16]) -> None:
        self._file.write(samples)
        self._frames += len(samples)

    def finish(self) -> bytes:
        """The WAV file; every piece must have been added."""
        if not self.complete:
            raise ValueError(f"{self._total - self._next} piece(s) missing")
        self._file.close()
        return self._buffer.getvalue()

    def discard(self) -> None:
        """Give the memory back (a job that failed half-way)."""
        self._early.clear()
        if not self._file.closed:
            self._file.close()
        self._buffer = io.BytesIO()
