"""Formats and sample rates: every format decodes at the asked rate with the expected length, the lossless
ones carry exactly the same samples, the lossy ones the same signal, and arrival order never changes a byte.

Measured with libsndfile 1.2.2 (libopus, libvorbis, LAME/mpg123): decoding trims every codec's delay and
padding, so all three lossy formats decode to exactly as many frames as were written, aligned to within one
sample. The containers say so for other decoders too: Opus writes a pre-skip of 312 samples at 48 kHz (6.5 ms)
and an end granule that cuts its last-frame padding; Vorbis's last granule is the frame count; MP3 carries a
LAME tag (encoder delay 576, padding to whole MPEG frames: 576 samples below 32 kHz, 1152 above), which
gapless decoders honour (one that ignores it plays 576 + 529 samples of silence first, the padding last).
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tts_common.voice import FORMATS, SAMPLE_RATES, AudioFormat, UnsupportedSampleRate
from tts_worker.audio import (
    OGG_SERIAL,
    AudioAssembler,
    encode,
    join_pieces,
    ogg_crc,
    to_pcm16,
)

NATIVE = 16_000
PAUSE_S = 0.2
LOSSLESS = (AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.PCM)
LOSSY = (AudioFormat.OGG_OPUS, AudioFormat.OGG_VORBIS, AudioFormat.MP3)
# A lossy decode of a voiced signal at these codecs' default bitrates correlates 0.989-0.9994 with the
# lossless one (measured at every rate below). 0.95 (a signal-to-error ratio of about 10 dB) leaves room for
# other codec library versions, while a misaligned, wrongly-rated, wrapped or silent decode scores near 0.
LOSSY_MIN_CORRELATION = 0.95


def rates_for(audio_format: AudioFormat) -> tuple[int, ...]:
    allowed = FORMATS[audio_format].sample_rates
    return tuple(r for r in SAMPLE_RATES if allowed is None or r in allowed)


# What libsndfile decodes; AAC (PyAV) has its own tests: tests/worker/test_audio_aac.py.
SNDFILE_FORMATS = [f for f in AudioFormat if f is not AudioFormat.AAC]
FORMAT_RATES = [(f, r) for f in SNDFILE_FORMATS for r in rates_for(f)]


def voiced(n: int, rate: int = NATIVE, seed: int = 0) -> npt.NDArray[np.float32]:
    """Something like a vowel: a gliding 120 Hz pitch with harmonics, a syllable envelope, a little noise."""
    t = np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t + seed)) / rate
    harmonics = sum((0.5 / k) * np.sin(k * phase) for k in range(1, 20) if k * 140 < rate / 2 - 500)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t + seed)
    noise = 0.003 * np.random.default_rng(seed).standard_normal(n)
    return np.asarray(0.5 * harmonics * envelope + noise, dtype=np.float32)


def make_pieces(lengths: list[int], rate: int = NATIVE) -> list[npt.NDArray[np.float32]]:
    return [voiced(n, rate, seed) for seed, n in enumerate(lengths)]


def assemble(
    pieces: list[npt.NDArray[np.float32]],
    audio_format: AudioFormat,
    output_rate: int,
    *,
    order: list[int] | None = None,
    native_rate: int = NATIVE,
) -> bytes:
    assembler = AudioAssembler(
        total=len(pieces),
        native_rate=native_rate,
        audio_format=audio_format,
        output_rate=output_rate,
        pause_s=PAUSE_S,
    )
    for position in order if order is not None else range(len(pieces)):
        assembler.add(position, pieces[position])
    return assembler.finish()


def decode(body: bytes, audio_format: AudioFormat, rate: int, dtype: str = "int16") -> npt.NDArray[Any]:
    if audio_format is AudioFormat.PCM:
        samples, got = sf.read(
            io.BytesIO(body), dtype=dtype, format="RAW", samplerate=rate, channels=1, subtype="PCM_16"
        )
    else:
        samples, got = sf.read(io.BytesIO(body), dtype=dtype)
        assert sf.info(io.BytesIO(body)).channels == 1
    assert got == rate
    return np.asarray(samples)


def native_frames(lengths: list[int]) -> int:
    return sum(lengths) + (len(lengths) - 1) * round(PAUSE_S * NATIVE)


def expected_frames(lengths: list[int], rate: int) -> int:
    return round(native_frames(lengths) * rate / NATIVE)


def lag_of(decoded: npt.NDArray[np.floating], reference: npt.NDArray[np.floating], span: int = 3000) -> int:
    """How many samples `decoded` runs behind `reference` (cross-correlation peak)."""
    m = min(len(decoded), len(reference))
    scores = np.correlate(decoded[:m], reference[span : m - span], mode="valid")
    return int(np.argmax(scores)) - span


def ogg_pages(body: bytes) -> list[tuple[int, int, bytes]]:
    """(granule position, serial number, payload) of each page."""
    pages, position = [], 0
    while position < len(body):
        assert body[position : position + 4] == b"OggS"
        segments = body[position + 26]
        start = position + 27 + segments
        end = start + sum(body[position + 27 : start])
        granule, serial = struct.unpack_from("<qI", body, position + 6)
        pages.append((granule, serial, body[start:end]))
        position = end
    return pages


# -- every format, every rate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio_format", "rate"), FORMAT_RATES, ids=[f"{f.value}-{r}" for f, r in FORMAT_RATES]
)
def test_every_format_decodes_at_the_asked_rate_with_the_expected_length(
    audio_format: AudioFormat, rate: int
) -> None:
    # Given
    lengths = [7001, 12_345, 3333]
    assembler = AudioAssembler(
        total=3, native_rate=NATIVE, audio_format=audio_format, output_rate=rate, pause_s=PAUSE_S
    )

    # When
    for position, piece in enumerate(make_pieces(lengths)):
        assembler.add(position, piece)
    duration_s = assembler.duration_s
    body = assembler.finish()

    # Then: the length is the native one at the new rate, within one output sample (no padding when decoded)
    decoded = decode(body, audio_format, rate)
    assert abs(len(decoded) - expected_frames(lengths, rate)) <= (0 if rate == NATIVE else 1)
    assert duration_s == len(decoded) / rate
    assert abs(duration_s - native_frames(lengths) / NATIVE) <= 1 / rate
    assert (assembler.content_type, assembler.extension) == (
        FORMATS[audio_format].content_type,
        FORMATS[audio_format].extension,
    )


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_wav_and_flac_decode_to_exactly_the_same_samples(rate: int) -> None:
    pieces = make_pieces([5000, 9000, 1, 4000])
    wav = decode(assemble(pieces, AudioFormat.WAV, rate), AudioFormat.WAV, rate)
    flac = decode(assemble(pieces, AudioFormat.FLAC, rate), AudioFormat.FLAC, rate)
    assert np.array_equal(wav, flac)


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_wav_and_pcm_carry_the_same_samples(rate: int) -> None:
    pieces = make_pieces([5000, 9000, 4000])
    wav = assemble(pieces, AudioFormat.WAV, rate)
    pcm = assemble(pieces, AudioFormat.PCM, rate)
    assert np.array_equal(decode(wav, AudioFormat.WAV, rate), decode(pcm, AudioFormat.PCM, rate))
    assert wav.endswith(pcm)  # a WAV with no trailing chunk: its data chunk is the raw PCM
    assert len(pcm) % 2 == 0


def test_at_the_native_rate_the_samples_are_the_joined_clipped_pieces() -> None:
    pieces = make_pieces([100, 2000, 50])
    pieces[1] = pieces[1] * 4  # far out of range: must clip, not wrap
    reference = to_pcm16(join_pieces(pieces, sampling_rate=NATIVE, pause_s=PAUSE_S))
    for audio_format in LOSSLESS:
        decoded = decode(assemble(pieces, audio_format, NATIVE), audio_format, NATIVE)
        assert np.array_equal(decoded, reference), audio_format


# -- resampling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [r for r in SAMPLE_RATES if r != NATIVE])
@pytest.mark.parametrize("lengths", [[1], [16_000], [333, 20_001, 7, 9999], [4000] * 12])
def test_a_resampled_output_lasts_as_long_as_the_native_one(rate: int, lengths: list[int]) -> None:
    body = assemble(make_pieces(lengths), AudioFormat.WAV, rate)
    frames = len(decode(body, AudioFormat.WAV, rate))
    assert abs(frames / rate - native_frames(lengths) / NATIVE) <= 1 / rate


@pytest.mark.parametrize("rate", [8000, 22_050, 24_000, 48_000])
def test_a_1_khz_sine_keeps_its_frequency(rate: int) -> None:
    # Given: 1 kHz at 16 kHz, in three pieces (the pauses cut it, the frequency stays)
    t = np.arange(16_000) / NATIVE
    sine = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    pieces = [sine[:5000], sine[5000:11_000], sine[11_000:]]

    # When
    decoded = decode(assemble(pieces, AudioFormat.WAV, rate), AudioFormat.WAV, rate, dtype="float32")

    # Then: the spectrum peaks at 1 kHz, within one FFT bin
    spectrum = np.abs(np.fft.rfft(decoded * np.hanning(len(decoded))))
    peak_hz = np.argmax(spectrum) * rate / len(decoded)
    assert abs(peak_hz - 1000) <= rate / len(decoded)
    # and the level survives (0.5 amplitude; the pauses are silence)
    assert 0.45 < np.max(np.abs(decoded)) < 0.55


def test_resampling_clips_the_overshoot_instead_of_wrapping() -> None:
    # A sine far beyond full scale becomes a square wave, whose resampled ringing overshoots 1.0
    t = np.arange(8000) / NATIVE
    loud = (3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    decoded = decode(assemble([loud], AudioFormat.WAV, 48_000), AudioFormat.WAV, 48_000).astype(np.int32)
    reference = np.sign(np.sin(2 * np.pi * 200 * np.arange(len(decoded)) / 48_000))
    # wrapping would flip full-scale samples to the other sign
    assert not np.any((reference * decoded) < -16_000)
    assert np.max(np.abs(decoded)) == 32767


# -- order and determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_format", list(AudioFormat))
@pytest.mark.parametrize("rate", [NATIVE, 24_000])
def test_pieces_out_of_order_give_the_same_bytes_as_in_order(audio_format: AudioFormat, rate: int) -> None:
    pieces = make_pieces([3000, 100, 8000, 2500, 6000])
    in_order = assemble(pieces, audio_format, rate)
    assert assemble(pieces, audio_format, rate, order=[4, 2, 0, 3, 1]) == in_order
    assert assemble(pieces, audio_format, rate, order=[3, 1, 0, 4, 2]) == in_order


@pytest.mark.parametrize("audio_format", [AudioFormat.OGG_OPUS, AudioFormat.OGG_VORBIS])
def test_ogg_files_get_a_fixed_serial_number_with_valid_checksums(audio_format: AudioFormat) -> None:
    # libsndfile seeds the serial from the clock: without the rewrite two runs differ in 8 bytes per page
    pieces = make_pieces([20_000, 20_000])
    body = assemble(pieces, audio_format, NATIVE)
    pages = ogg_pages(body)
    assert {serial for _, serial, _ in pages} == {OGG_SERIAL}
    for granule, _, _ in pages:
        assert granule >= -1
    position = 0
    for _ in pages:  # every checksum recomputes; libogg would drop a page whose checksum is wrong
        segments = body[position + 26]
        end = position + 27 + segments + sum(body[position + 27 : position + 27 + segments])
        page = bytearray(body[position:end])
        stored = int.from_bytes(page[22:26], "little")
        page[22:26] = bytes(4)
        assert ogg_crc(bytes(page)) == stored
        position = end
    assert len(decode(body, audio_format, NATIVE)) == expected_frames([20_000, 20_000], NATIVE)


def ogg_crc_bitwise(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x8000_0000 else crc << 1
            crc &= 0xFFFF_FFFF
    return crc


@given(st.binary(max_size=600))
def test_the_ogg_checksum_is_the_bitwise_one(data: bytes) -> None:
    assert ogg_crc(data) == ogg_crc_bitwise(data)


# -- lossy formats: the same signal, aligned --------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio_format", "rate"),
    [(f, r) for f in LOSSY for r in (8000, 16_000, 24_000, 48_000)],
    ids=[f"{f.value}-{r}" for f in LOSSY for r in (8000, 16_000, 24_000, 48_000)],
)
def test_lossy_formats_decode_to_the_lossless_signal(audio_format: AudioFormat, rate: int) -> None:
    # Given
    pieces = make_pieces([20_000, 12_000, 16_000])
    lossless = decode(assemble(pieces, AudioFormat.WAV, rate), AudioFormat.WAV, rate, dtype="float32")

    # When
    lossy = decode(assemble(pieces, audio_format, rate), audio_format, rate, dtype="float32")

    # Then: the decoder has trimmed the codec delay (measured: 0, within one sample) and padding
    assert len(lossy) == len(lossless)
    lag = lag_of(lossy, lossless)
    assert abs(lag) <= 1
    aligned = lossy[lag:] if lag >= 0 else lossy[:lag]
    reference = lossless[: len(aligned)] if lag >= 0 else lossless[-lag:]
    assert np.corrcoef(aligned, reference)[0, 1] >= LOSSY_MIN_CORRELATION


@pytest.mark.parametrize("rate", rates_for(AudioFormat.OGG_OPUS))
def test_opus_says_its_pre_skip_and_exact_length(rate: int) -> None:
    lengths = [20_000, 7777]
    frames = len(decode(assemble(make_pieces(lengths), AudioFormat.WAV, rate), AudioFormat.WAV, rate))
    pages = ogg_pages(assemble(make_pieces(lengths), AudioFormat.OGG_OPUS, rate))
    head = pages[0][2]
    assert head[:8] == b"OpusHead"
    pre_skip = struct.unpack_from("<H", head, 10)[0]
    assert pre_skip == 312  # 6.5 ms at 48 kHz, libopus's lookahead
    # Opus granules count 48 kHz samples; the last one ends the audio exactly where ours ends
    assert pages[-1][0] - pre_skip == frames * 48_000 // rate


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_vorbis_ends_on_the_exact_frame_count(rate: int) -> None:
    lengths = [20_000, 7777]
    pages = ogg_pages(assemble(make_pieces(lengths), AudioFormat.OGG_VORBIS, rate))
    assert pages[-1][0] == len(
        decode(assemble(make_pieces(lengths), AudioFormat.WAV, rate), AudioFormat.WAV, rate)
    )


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_mp3_carries_its_delay_and_padding_for_gapless_players(rate: int) -> None:
    lengths = [20_000, 7777]
    body = assemble(make_pieces(lengths), AudioFormat.MP3, rate)
    tag = body.find(b"LAME", max(body.find(b"Info"), body.find(b"Xing")))
    assert tag > 0
    packed = body[tag + 21 : tag + 24]
    delay, padding = (packed[0] << 4) | (packed[1] >> 4), ((packed[1] & 0x0F) << 8) | packed[2]
    frame = 1152 if rate >= 32_000 else 576
    frames = len(decode(body, AudioFormat.MP3, rate))
    assert frames == len(decode(assemble(make_pieces(lengths), AudioFormat.WAV, rate), AudioFormat.WAV, rate))
    assert delay == 576
    assert 0 <= padding < 2 * frame + 529  # LAME pads to whole frames after its own delay and the decoder's
    assert (delay + frames + padding) % frame == 0


# -- any pieces, any order (lossless) ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=6000), min_size=1, max_size=8),
    rate=st.sampled_from([NATIVE, 8000, 24_000, 44_100]),
    data=st.data(),
)
def test_any_pieces_in_any_order_make_the_same_lossless_audio(
    lengths: list[int], rate: int, data: st.DataObject
) -> None:
    # Given (no audio at all is another test's)
    assume(native_frames(lengths) >= 4)
    pieces = make_pieces(lengths)
    order = data.draw(st.permutations(range(len(pieces))))

    # When
    bodies = {f: assemble(pieces, f, rate, order=list(order)) for f in LOSSLESS}

    # Then: the same bytes as in order, the same samples in all three, the expected length
    for audio_format, body in bodies.items():
        assert body == assemble(pieces, audio_format, rate)
    wav, flac, pcm = (decode(bodies[f], f, rate) for f in LOSSLESS)
    assert np.array_equal(wav, flac)
    assert np.array_equal(wav, pcm)
    assert abs(len(wav) - expected_frames(lengths, rate)) <= (0 if rate == NATIVE else 1)
    if rate == NATIVE:
        assert np.array_equal(wav, to_pcm16(join_pieces(pieces, sampling_rate=NATIVE, pause_s=PAUSE_S)))


@pytest.mark.parametrize("audio_format", SNDFILE_FORMATS)
def test_no_audio_at_all_still_makes_a_file_that_decodes(audio_format: AudioFormat) -> None:
    body = encode(np.zeros(0, np.float32), native_rate=NATIVE, audio_format=audio_format, output_rate=NATIVE)
    # FLAC, MP3 and Opus cannot hold zero frames (libsndfile writes nothing or a malformed file): one silent
    expected = 1 if audio_format in (AudioFormat.FLAC, AudioFormat.MP3, AudioFormat.OGG_OPUS) else 0
    assert decode(body, audio_format, NATIVE).tolist() == [0] * expected


# -- the contract -----------------------------------------------------------------------------------------


def test_duration_is_exact_as_soon_as_the_last_piece_is_in() -> None:
    assembler = AudioAssembler(total=2, native_rate=NATIVE, audio_format=AudioFormat.MP3, output_rate=24_000)
    assembler.add(1, voiced(8000))
    assert (assembler.pieces_done, assembler.complete, assembler.duration_s) == (1, False, 0.0)
    with pytest.raises(ValueError, match="missing"):
        assembler.finish()
    assembler.add(0, voiced(8000))
    assert assembler.complete
    assert assembler.duration_s == pytest.approx((16_000 + 0.2 * NATIVE) / NATIVE, abs=1 / 24_000)
    assert assembler.finish() == assembler.finish()


def test_a_piece_twice_or_out_of_range_is_refused() -> None:
    assembler = AudioAssembler(total=2, native_rate=NATIVE, audio_format=AudioFormat.FLAC, output_rate=NATIVE)
    assembler.add(1, voiced(10))
    for position in (1, 2, -1):
        with pytest.raises(ValueError, match="out of range"):
            assembler.add(position, voiced(10))
    assembler.add(0, voiced(10))
    with pytest.raises(ValueError, match="out of range"):
        assembler.add(0, voiced(10))


def test_a_rate_the_format_cannot_hold_is_refused() -> None:
    with pytest.raises(UnsupportedSampleRate, match="22050"):
        AudioAssembler(total=1, native_rate=NATIVE, audio_format=AudioFormat.OGG_OPUS, output_rate=22_050)
    with pytest.raises(ValueError, match="at least one piece"):
        AudioAssembler(total=0, native_rate=NATIVE, audio_format=AudioFormat.WAV, output_rate=NATIVE)


@pytest.mark.parametrize("audio_format", list(AudioFormat))
def test_discard_gives_up_half_way(audio_format: AudioFormat) -> None:
    assembler = AudioAssembler(total=3, native_rate=NATIVE, audio_format=audio_format, output_rate=24_000)
    assembler.add(0, voiced(4000))
    assembler.add(2, voiced(4000))
    assembler.discard()
    assert assembler.pieces_done == 1


@pytest.mark.parametrize("audio_format", list(AudioFormat))
def test_one_shot_encode_is_a_one_piece_assembly(audio_format: AudioFormat) -> None:
    waveform = voiced(9000)
    body = encode(waveform, native_rate=NATIVE, audio_format=audio_format, output_rate=24_000)
    assert body == assemble([waveform], audio_format, 24_000)


# -- memory -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_format", [AudioFormat.FLAC, AudioFormat.PCM])
def test_memory_is_the_output_and_the_early_pieces_not_the_text(audio_format: AudioFormat) -> None:
    # Given: ten minutes at 16 kHz in 100 pieces of 5.8 s, in reversed groups of 8, resampled to 24 kHz
    piece = voiced(93_000)
    order = [g + 7 - i for g in range(0, 100, 8) for i in range(8) if g + 7 - i < 100]

    # When
    tracemalloc.start()
    try:
        assembler = AudioAssembler(
            total=100, native_rate=NATIVE, audio_format=audio_format, output_rate=24_000
        )
        for position in order:
            assembler.add(position, piece * np.float32(0.5 + position % 5 / 10))
        body = assembler.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then: the whole text as float32 would be 38 MB at 16 kHz; we hold the output (plus BytesIO's growth
    # slack, at most an eighth of it) and eight pieces (int16, 186 KB each) and the piece being written
    assert peak - len(body) < len(body) / 8 + 6 * 2**20
