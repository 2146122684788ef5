"""Audio assembly: pieces joined with short pauses, resampled if asked, encoded in memory.

The pipeline is one pass in piece order: a piece becomes 16-bit PCM at the model's native rate (clipped, see
`to_pcm16`), waits only if pieces before it are still missing, then goes (with the pause before it) through a
streaming resampler (`soxr`, skipped when the rates are equal) straight into the encoder. Memory is the
encoded output plus the pieces that came early, never the whole text's float32 audio.

Formats (`tts_common.voice.FORMATS`): WAV and FLAC (PCM_16, lossless: the same samples), OGG Opus, OGG Vorbis,
MP3 (lossy; libsndfile trims their codec delay and padding when it decodes them), raw PCM (s16le, the same
samples as the WAV without its header) and AAC (AAC-LC in ADTS frames, FFmpeg's native encoder through PyAV:
libsndfile has no AAC; ADTS carries no gapless info, so decoders play the encoder's 1,024 priming samples).
The same pieces give the same bytes whatever order they arrive in and from one run to the next (libsndfile
draws a random Ogg stream serial number from the clock; we replace it).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from tts_common.voice import FORMATS, AudioFormat, UnsupportedSampleRate

PIECE_PAUSE_S = 0.2

# libsndfile's (format, subtype) for each container; PCM is written by hand.
_SOUNDFILE_FORMATS: Final[dict[AudioFormat, tuple[str, str]]] = {
    AudioFormat.WAV: ("WAV", "PCM_16"),
    AudioFormat.FLAC: ("FLAC", "PCM_16"),
    AudioFormat.OGG_OPUS: ("OGG", "OPUS"),
    AudioFormat.OGG_VORBIS: ("OGG", "VORBIS"),
    AudioFormat.MP3: ("MP3", "MPEG_LAYER_III"),
}
_OGG_FORMATS: Final = frozenset({AudioFormat.OGG_OPUS, AudioFormat.OGG_VORBIS})
# For zero frames libsndfile writes no FLAC or MP3 and a malformed Opus file: those get one silent frame
# (and AAC, whose ADTS stream would be empty).
_NEED_A_FRAME: Final = frozenset({AudioFormat.FLAC, AudioFormat.MP3, AudioFormat.OGG_OPUS, AudioFormat.AAC})
AAC_BIT_RATE: Final = 64_000
# Our files hold one logical Ogg stream, so any fixed serial number is valid; this one reads "TTS1".
OGG_SERIAL: Final = 0x31535454
RESAMPLE_QUALITY: Final = "HQ"


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


def encode(
    waveform: npt.NDArray[np.floating], *, native_rate: int, audio_format: AudioFormat, output_rate: int
) -> bytes:
    """One waveform at `native_rate`, delivered as `audio_format` at `output_rate`."""
    assembler = AudioAssembler(
        total=1, native_rate=native_rate, audio_format=audio_format, output_rate=output_rate
    )
    assembler.add(0, waveform)
    return assembler.finish()


class AudioAssembler:
    """Pieces in, in any order; one file out, in `audio_format` at `output_rate`.

    At the native rate a WAV is the same bytes as `encode_wav(join_pieces(...))`. A piece is kept (as 16-bit
    PCM at the native rate) only until the pieces before it have arrived; each piece in order is resampled and
    encoded at once. The last piece flushes the resampler and closes the encoder, so `duration_s` is exact as
    soon as `complete` is true.
    """

    def __init__(
        self,
        *,
        total: int,
        native_rate: int,
        audio_format: AudioFormat,
        output_rate: int,
        pause_s: float = PIECE_PAUSE_S,
        target: Any = None,
    ) -> None:
        """`target`: where the encoded bytes go (a binary file object, seekable unless the format is Ogg;
        the fan-out join's multipart sink); None: memory, read back with `finish`. With a target of its own
        an Ogg stream keeps libsndfile's serial numbers (the caller rewrites them page by page)."""
        if total < 1:
            raise ValueError("an audio file needs at least one piece")
        if native_rate < 1 or output_rate < 1:
            raise ValueError("sample rates must be positive")
        audio_format = AudioFormat(audio_format)
        allowed = FORMATS[audio_format].sample_rates
        if allowed is not None and output_rate not in allowed:
            raise UnsupportedSampleRate(
                f"{audio_format.value} cannot hold {output_rate} Hz; it holds "
                + ", ".join(str(r) for r in sorted(allowed))
            )
        self._total = total
        self._native_rate = native_rate
        self._output_rate = output_rate
        self._format = audio_format
        self._silence = np.zeros(round(pause_s * native_rate), dtype=np.int16)
        self._early: dict[int, npt.NDArray[np.int16]] = {}
        self._next = 0
        self._frames = 0  # output frames handed to the encoder
        self._native_frames = 0  # frames at the native rate, pauses included, before resampling
        self._starts: list[int] = []  # where each piece begins, in native frames (speech marks use it)
        self._resampler = (
            None
            if output_rate == native_rate
            else soxr.ResampleStream(native_rate, output_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        )
        self._own_buffer = target is None
        self._buffer = io.BytesIO() if target is None else target
        self._file: sf.SoundFile | AacWriter | None = None
        if audio_format is AudioFormat.AAC:
            self._file = AacWriter(self._buffer, rate=output_rate)
        elif audio_format in _SOUNDFILE_FORMATS:
            container, subtype = _SOUNDFILE_FORMATS[audio_format]
            self._file = sf.SoundFile(
                self._buffer, mode="w", samplerate=output_rate, channels=1, format=container, subtype=subtype
            )
        self._body: bytes | None = None

    @property
    def total(self) -> int:
        return self._total

    @property
    def native_rate(self) -> int:
        return self._native_rate

    @property
    def output_rate(self) -> int:
        return self._output_rate

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    @property
    def content_type(self) -> str:
        return FORMATS[self._format].content_type

    @property
    def extension(self) -> str:
        return FORMATS[self._format].extension

    @property
    def pieces_done(self) -> int:
        return self._next + len(self._early)

    @property
    def complete(self) -> bool:
        return self._next == self._total

    @property
    def piece_starts(self) -> tuple[int, ...]:
        """The native-rate frame at which each piece written so far begins in the joined audio."""
        return tuple(self._starts)

    @property
    def duration_s(self) -> float:
        """Seconds of audio delivered (at the output rate): exact once `complete`; codec padding aside."""
        return self._frames / self._output_rate

    def add(self, position: int, waveform: npt.NDArray[np.floating]) -> None:
        """Piece number `position` (0-based) of `total`; each one exactly once."""
        if not (self._next <= position < self._total) or position in self._early:
            raise ValueError(f"piece {position} is out of range or was added before")
        self.add_pcm16(position, to_pcm16(waveform))

    def add_pcm16(self, position: int, samples: npt.NDArray[np.int16]) -> None:
        """Like `add`, for a piece already in 16-bit PCM at the native rate (the fan-out join's input)."""
        if not (self._next <= position < self._total) or position in self._early:
            raise ValueError(f"piece {position} is out of range or was added before")
        self._early[position] = samples
        while self._next in self._early:
            if self._next:
                self._write(self._silence)
            self._starts.append(self._native_frames)
            self._write(self._early.pop(self._next))
            self._next += 1
        if self.complete:
            self._close()

    def _write(self, samples: npt.NDArray[np.int16], *, last: bool = False) -> None:
        self._native_frames += len(samples)
        if self._resampler is not None:
            resampled = self._resampler.resample_chunk(
                samples.astype(np.float32) / np.float32(32767.0), last=last
            )
            samples = to_pcm16(resampled)
        if not len(samples):
            return
        if self._file is not None:
            self._file.write(samples)
        else:
            self._buffer.write(samples.astype("<i2", copy=False).tobytes())
        self._frames += len(samples)

    def _close(self) -> None:
        if self._resampler is not None:
            self._write(np.zeros(0, dtype=np.int16), last=True)
            self._resampler = None
        if not self._frames and self._format in _NEED_A_FRAME:
            self._write(np.zeros(1, dtype=np.int16))
        if self._file is not None:
            self._file.close()
        if self._format in _OGG_FORMATS and self._own_buffer:
            with self._buffer.getbuffer() as view:
                set_ogg_serial(view, OGG_SERIAL)

    def finish(self) -> bytes:
        """The file; every piece must have been added."""
        if not self.complete:
            raise ValueError(f"{self._total - self._next} piece(s) missing")
        if self._body is None:
            self._body = self._buffer.getvalue()
            self._buffer = io.BytesIO()
        return self._body

    def discard(self) -> None:
        """Give the memory back (a job that failed half-way)."""
        self._early.clear()
        self._resampler = None
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._buffer = io.BytesIO()
        self._body = None


class AacWriter:
    """AAC-LC, mono, in ADTS frames, written to `buffer` as samples come (the SoundFile surface the assembler
    uses: write, close, closed). Byte-deterministic: no timestamps or random ids in ADTS."""

    def __init__(self, buffer: io.BytesIO, *, rate: int, bit_rate: int = AAC_BIT_RATE) -> None:
        import av  # the worker's dependency only; the API never encodes

        self._av = av
        self._out = av.open(buffer, mode="w", format="adts")
        self._stream = self._out.add_stream("aac", rate=rate, layout="mono")
        self._stream.bit_rate = bit_rate
        self._rate = rate
        self._pts = 0
        self.closed = False

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        if not len(samples):
            return
        frame = self._av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += len(samples)
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()


def output_frames(native_frames: int, *, native_rate: int, output_rate: int) -> int:
    """The frames an assembler delivers for `native_frames` in (soxr's stream rounds the total half up),
    before the one-silent-frame rule for empty audio: known before a join starts."""
    if native_rate == output_rate:
        return native_frames
    return (native_frames * output_rate + native_rate // 2) // native_rate


class WavAssembler(AudioAssembler):
    """A WAV at the model's native rate (the worker core's call until it passes a voice)."""

    def __init__(self, *, total: int, sampling_rate: int, pause_s: float = PIECE_PAUSE_S) -> None:
        super().__init__(
            total=total,
            native_rate=sampling_rate,
            audio_format=AudioFormat.WAV,
            output_rate=sampling_rate,
            pause_s=pause_s,
        )


# -- Ogg pages: a fixed stream serial number --------------------------------------------------------------

_BIT_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


@lru_cache(maxsize=64)
def _zeros_crc32(length: int) -> int:
    return zlib.crc32(bytes(length))


def ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, MSB first, initial value 0, no final xor.

    zlib computes the bit-reflected CRC with initial and final 0xFFFFFFFF; xoring with the CRC of as many zero
    bytes cancels both, and reversing the bits of every input byte and of the result turns reflected into
    MSB-first. All in C, so rewriting a two-hour file costs milliseconds.
    """
    reflected = zlib.crc32(data.translate(_BIT_REVERSED)) ^ _zeros_crc32(len(data))
    return int(f"{reflected:032b}"[::-1], 2)


def set_ogg_serial(pages: memoryview | bytearray, serial: int) -> None:
    """Give every page of an Ogg stream (in place) the serial number `serial`, with its checksum redone."""
    position, size = 0, len(pages)
    serial_bytes = serial.to_bytes(4, "little")
    while position < size:
        if bytes(pages[position : position + 4]) != b"OggS" or position + 27 > size:
            raise ValueError(f"no Ogg page at byte {position}")
        segments = pages[position + 26]
        end = position + 27 + segments + sum(pages[position + 27 : position + 27 + segments])
        if end > size:
            raise ValueError(f"the Ogg page at byte {position} is cut short")
        pages[position + 14 : position + 18] = serial_bytes
        pages[position + 22 : position + 26] = b"\0\0\0\0"
        pages[position + 22 : position + 26] = ogg_crc(bytes(pages[position:end])).to_bytes(4, "little")
        position = end
