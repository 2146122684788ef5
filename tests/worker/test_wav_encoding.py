"""WAV encoding: 16-bit PCM mono, clipped rather than wrapped, byte-identical for the same samples."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from tts_common.voice import AudioFormat
from tts_worker.audio import AudioAssembler, WavAssembler, encode_wav, join_pieces, to_pcm16


def test_encodes_a_16_bit_mono_wav_that_decodes_back() -> None:
    # Given
    waveform = np.sin(np.linspace(0, 200, 16_000)).astype(np.float32) * 0.5

    # When
    body = encode_wav(waveform, sampling_rate=16_000)

    # Then
    info = sf.info(io.BytesIO(body))
    assert (info.format, info.subtype, info.channels, info.samplerate, info.frames) == (
        "WAV",
        "PCM_16",
        1,
        16_000,
        16_000,
    )
    decoded, _ = sf.read(io.BytesIO(body), dtype="float32")
    assert np.max(np.abs(decoded - waveform)) < 1e-4


def test_out_of_range_samples_clip_and_nan_becomes_silence() -> None:
    pcm = to_pcm16(np.array([2.0, -3.0, 1.0, -1.0, np.nan, np.inf], dtype=np.float32))
    assert pcm.tolist() == [32767, -32767, 32767, -32767, 0, 32767]


def test_same_samples_give_the_same_bytes() -> None:
    waveform = np.random.default_rng(1).uniform(-1, 1, 8000).astype(np.float32)
    assert encode_wav(waveform, sampling_rate=16_000) == encode_wav(waveform.copy(), sampling_rate=16_000)


def test_pieces_are_joined_with_silence_between_them() -> None:
    # Given
    a, b, c = (np.full(n, 0.5, dtype=np.float32) for n in (100, 200, 300))

    # When
    joined = join_pieces([a, b, c], sampling_rate=1000, pause_s=0.2)

    # Then
    assert len(joined) == 600 + 2 * 200
    assert np.all(joined[100:300] == 0)
    assert np.all(joined[500:700] == 0)
    assert np.all(joined[:100] == 0.5)
    assert np.all(joined[-300:] == 0.5)


def test_an_empty_waveform_still_makes_a_valid_file() -> None:
    body = encode_wav(join_pieces([], sampling_rate=16_000), sampling_rate=16_000)
    assert sf.info(io.BytesIO(body)).frames == 0


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]])
def test_a_wav_at_the_native_rate_is_the_same_bytes_as_the_joined_pieces(order: list[int]) -> None:
    # Given: pieces of several lengths, one out of range (clipped, not wrapped), one empty
    rng = np.random.default_rng(7)
    pieces = [rng.uniform(-1, 1, n).astype(np.float32) for n in (3000, 0, 12_345, 800)]
    pieces[2] *= 3
    expected = encode_wav(join_pieces(pieces, sampling_rate=16_000, pause_s=0.2), sampling_rate=16_000)

    # When: the new assembler with the output rate left at the native one, and the old name for it
    audio = AudioAssembler(
        total=4, native_rate=16_000, audio_format=AudioFormat.WAV, output_rate=16_000, pause_s=0.2
    )
    wav = WavAssembler(total=4, sampling_rate=16_000, pause_s=0.2)
    for position in order:
        audio.add(position, pieces[position])
        wav.add(position, pieces[position])

    # Then
    assert audio.finish() == expected
    assert wav.finish() == expected
    assert audio.duration_s == wav.duration_s == (16_145 + 3 * 3200) / 16_000
    assert (wav.content_type, wav.extension) == ("audio/wav", "wav")
