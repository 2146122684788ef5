"""AAC (ADTS, PyAV's FFmpeg encoder): decodes at every rate to the signal, lasts as long as the other formats
(give or take the encoder's priming and last-frame padding, which ADTS cannot describe), and is
byte-deterministic whatever order the pieces arrive in."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest

from tests.worker.test_audio_formats import (
    LOSSY_MIN_CORRELATION,
    NATIVE,
    assemble,
    decode,
    expected_frames,
    lag_of,
    make_pieces,
)
from tts_common.voice import FORMATS, SAMPLE_RATES, AudioFormat
from tts_worker.audio import AudioAssembler, encode

av = pytest.importorskip("av")

AAC_FRAME = 1024  # samples per AAC-LC frame; FFmpeg's encoder primes with one frame


def decode_aac(body: bytes, rate: int) -> npt.NDArray[np.float32]:
    """Mono float32 samples with the encoder's priming frame dropped (its padding stays at the end)."""
    with av.open(io.BytesIO(body), format="adts") as container:
        frames = list(container.decode(audio=0))
    assert {f.sample_rate for f in frames} == {rate}
    assert {f.layout.name for f in frames} == {"mono"}
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
    return samples[AAC_FRAME:]


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_aac_decodes_at_the_asked_rate_to_the_lossless_signal(rate: int) -> None:
    lengths = [20_000, 12_000, 16_000]
    pieces = make_pieces(lengths)
    assembler = AudioAssembler(total=3, native_rate=NATIVE, audio_format=AudioFormat.AAC, output_rate=rate)
    for position, piece in enumerate(pieces):
        assembler.add(position, piece)
    body = assembler.finish()

    assert body[:2] == b"\xff\xf1"  # an ADTS sync word (MPEG-4, no CRC)
    decoded = decode_aac(body, rate)
    expected = expected_frames(lengths, rate)
    assert expected <= len(decoded) < expected + 2 * AAC_FRAME  # padding to whole frames
    assert assembler.duration_s == pytest.approx(expected / rate, abs=1 / rate)
    lossless = decode(assemble(pieces, AudioFormat.WAV, rate), AudioFormat.WAV, rate, dtype="float32")
    lossy = decode_aac(body, rate)[: len(lossless)]
    lag = lag_of(lossy, lossless)
    assert abs(lag) <= 2
    aligned = lossy[lag:] if lag >= 0 else lossy[:lag]
    reference = lossless[: len(aligned)] if lag >= 0 else lossless[-lag:]
    assert np.corrcoef(aligned, reference)[0, 1] >= LOSSY_MIN_CORRELATION
    assert (
        (assembler.content_type, assembler.extension)
        == ("audio/aac", "aac")
        == (
            FORMATS[AudioFormat.AAC].content_type,
            FORMATS[AudioFormat.AAC].extension,
        )
    )


def test_aac_bytes_do_not_depend_on_arrival_order_or_the_run() -> None:
    pieces = make_pieces([3000, 100, 8000, 2500])
    in_order = assemble(pieces, AudioFormat.AAC, 24_000)
    assert assemble(pieces, AudioFormat.AAC, 24_000, order=[3, 1, 0, 2]) == in_order
    assert assemble(pieces, AudioFormat.AAC, 24_000) == in_order


def test_no_audio_still_makes_an_aac_file_that_decodes() -> None:
    body = encode(
        np.zeros(0, np.float32), native_rate=NATIVE, audio_format=AudioFormat.AAC, output_rate=NATIVE
    )
    decoded = decode_aac(body, NATIVE)
    assert len(decoded) <= 2 * AAC_FRAME
    assert np.max(np.abs(decoded), initial=0.0) < 1e-3
