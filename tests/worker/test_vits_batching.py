"""The batched forward on tiny-random (CPU): per-item noise, equal to the item alone, half precision."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from tts_common.exceptions import SynthesisFailed
from tts_worker.audio import encode_wav, to_pcm16
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.cpu_threads import usable_cores
from tts_worker.synthesizer.vits import VitsSynthesizer, Waveform

pytestmark = pytest.mark.model

ITEMS = [
    SynthesisItem(text="Hyvää huomenta, tämä on testi.", seed=11),
    SynthesisItem(text="Kissa.", seed=12, speaking_rate=1.3),
    SynthesisItem(text="Suomen kieli on uralilainen kieli, jota puhuu viisi miljoonaa.", seed=13),
    SynthesisItem(text="Järvellä oli hiljaista.", seed=14, noise_scale=0.3, noise_scale_duration=0.5),
]

# "Equal up to float rounding" for an item in a padded batch against the same item elsewhere. The padded path
# changes nothing but the order of float reductions (batched matmuls and convolutions over padded tensors): on
# tiny-random the decoder's input differs by ~5e-7 relative (a few float32 ulps) and the decoder, whose random
# weights drive it to ~±370 before the final tanh, amplifies that near zero crossings. Durations are ceil()ed,
# so a rounding difference could move a whole frame: lengths must be equal exactly.
# Measured (a scratch script: 400 batches of 2..8 items per thread count, random texts of 4..88 characters,
# seeds, speaking rates 0.7..1.8 and noise scales; each item against itself alone, and 400 items against
# themselves in another company), torch threads 1 | 2, lone items' decoder on torch as in `batching`:
#   alone vs batch, 1,997 items: no length ever differed; worst max difference 27 | 25 16-bit steps (8.4e-4 |
#   7.5e-4), 99th percentile ~12 steps; min SNR 102.8 | 102.1 dB, median 109 dB. (The lone item's decoder on
#   ONNX Runtime instead: 25 | 25 steps, 102.4 | 101.8 dB.)
#   batch vs another batch, 400 items: worst 7 | 9 steps, min SNR 107.8 | 108.9 dB.
# The bounds leave ~4.7x (max difference) and ~22 dB (SNR: an error 12x larger) over those worst cases, and
# are far from a real fault: the decoder's padding leaking into an item's tail (the bug these tests came from)
# gives full-scale differences (65,534 steps) and an SNR of 18..23 dB; another item's noise would give
# unrelated audio (~0 dB); a moved frame fails the length check. 128 steps is -48 dBFS at a single sample, and
# an error 80 dB below the signal is inaudible, yet 22 dB above anything float32 rounding produced here.
MAX_PCM16_STEPS = 128
MIN_SNR_DB = 80.0


def assert_equal_up_to_float_rounding(
    actual: npt.NDArray[np.float32], expected: npt.NDArray[np.float32]
) -> None:
    assert actual.shape == expected.shape  # a frame more or less would be a different duration, not rounding
    steps = np.abs(to_pcm16(actual).astype(np.int32) - to_pcm16(expected).astype(np.int32))
    assert steps.max() <= MAX_PCM16_STEPS, f"{steps.max()} 16-bit steps apart (bound {MAX_PCM16_STEPS})"
    error = np.sum((actual.astype(np.float64) - expected.astype(np.float64)) ** 2)
    signal = np.sum(expected.astype(np.float64) ** 2)
    snr_db = np.inf if error == 0 else 10 * np.log10(signal / error)
    assert snr_db >= MIN_SNR_DB, f"SNR {snr_db:.1f} dB (floor {MIN_SNR_DB} dB)"


def _compositions() -> list[list[SynthesisItem]]:
    """ITEMS, and fixed random batches of 2..8 items: texts of different lengths, seeds and voice params."""
    texts = [
        "Kissa.",
        "Hei!",
        "Järvellä oli hiljaista.",
        "Aamulla satoi, mutta iltapäivällä aurinko paistoi taas.",
        "Helsinki on Suomen pääkaupunki ja suurin kaupunki.",
        "Tämä lause on hieman pidempi kuin edelliset, jotta pituudet vaihtelevat kunnolla erässä.",
        "Yksi, kaksi, kolme, neljä, viisi.",
    ]
    draw = random.Random(8)
    batches = [
        [
            SynthesisItem(
                text=draw.choice(texts),
                seed=draw.randrange(2**31),
                speaking_rate=draw.choice([0.7, 1.0, 1.3, 1.8]),
                noise_scale=draw.choice([0.3, 0.667, 1.0]),
                noise_scale_duration=draw.choice([0.5, 0.8, 1.0]),
            )
            for _ in range(size)
        ]
        for size in (2, 3, 5, 8)
    ]
    return [ITEMS, *batches]


COMPOSITIONS = _compositions()


@pytest.fixture(scope="module", autouse=True)
def torch_threads() -> Iterator[int]:
    """torch's intra-op threads as the worker sets them from TTS_NUM_THREADS (default: every usable core).

    Float rounding depends on the thread count, so `TTS_NUM_THREADS=1` and `=2` each run the module on theirs.
    VitsSynthesizer.load does not read the variable (load_synthesizer pins the threads), so this fixture does;
    the count in force before is restored afterwards.
    """
    before = torch.get_num_threads()
    threads = int(os.environ.get("TTS_NUM_THREADS") or usable_cores())
    torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    yield threads
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batching(tiny_model_dir: Path, torch_threads: int) -> VitsSynthesizer:
    """The CUDA code path (one padded forward per call, a lone item's decoder on torch), run on the CPU."""
    return VitsSynthesizer.load(tiny_model_dir, device="cpu", batch_forward=True, decoder_runtime="torch")


@pytest.fixture(scope="module")
def sequential(tiny_model_dir: Path, torch_threads: int) -> VitsSynthesizer:
    """One item per forward, the decoder on torch (on ONNX Runtime it is equal up to float rounding only:
    test_onnx_decoder)."""
    return VitsSynthesizer.load(tiny_model_dir, device="cpu", decoder_runtime="torch")


def seed_style(synthesizer: VitsSynthesizer, item: SynthesisItem) -> np.ndarray[Any, Any]:
    """What the seed did: the model called on one text after seeding torch's global generator."""
    model = synthesizer.model
    model.noise_scale, model.noise_scale_duration = item.noise_scale, item.noise_scale_duration
    ids = torch.tensor([synthesizer.token_ids(item.text)])
    with torch.inference_mode():
        torch.manual_seed(item.seed)
        output = model(input_ids=ids, speaking_rate=model.config.speaking_rate * item.speaking_rate)
    return output.waveform[0, : int(output.sequence_lengths[0])].numpy()  # type: ignore[no-any-return]


def test_one_item_alone_is_bit_identical_to_the_seed_style_call(sequential: VitsSynthesizer) -> None:
    for item in ITEMS:
        [result] = sequential.synthesize([item])
        assert np.array_equal(result.waveform, seed_style(sequential, item))


@pytest.mark.parametrize("items", COMPOSITIONS, ids=lambda items: f"{len(items)}-items")
def test_an_item_in_a_padded_batch_equals_the_item_alone(
    batching: VitsSynthesizer, items: list[SynthesisItem]
) -> None:
    # When
    together = batching.synthesize(items)
    alone = [batching.synthesize([item])[0] for item in items]

    # Then: same length, same samples up to float rounding (the padding does not leak into the tail)
    for batched, single in zip(together, alone, strict=True):
        assert_equal_up_to_float_rounding(batched.waveform, single.waveform)


@pytest.mark.parametrize("items", COMPOSITIONS, ids=lambda items: f"{len(items)}-items")
def test_a_batch_gives_the_same_audio_whatever_the_neighbours(
    batching: VitsSynthesizer, items: list[SynthesisItem]
) -> None:
    # Given: the first item with these neighbours, then last among ITEMS' longest and shortest
    first = batching.synthesize(items)[0]

    # When
    [*_, again] = batching.synthesize([ITEMS[2], ITEMS[1], items[0]])

    # Then
    assert_equal_up_to_float_rounding(again.waveform, first.waveform)


def test_the_single_item_path_gives_identical_wav_bytes_run_after_run(sequential: VitsSynthesizer) -> None:
    def wav() -> bytes:
        [result] = sequential.synthesize([ITEMS[0]])
        return encode_wav(result.waveform, sampling_rate=result.sampling_rate)

    assert wav() == wav()


def test_half_precision_on_the_cpu_runs_the_autocast_path(tiny_model_dir: Path) -> None:
    # bfloat16 autocast on the CPU exercises the code that float16 runs on CUDA
    half = VitsSynthesizer.load(tiny_model_dir, device="cpu", dtype="bfloat16", batch_forward=True)
    reference = VitsSynthesizer.load(tiny_model_dir, device="cpu", batch_forward=True)

    results = half.synthesize(ITEMS)

    for result, exact in zip(results, reference.synthesize(ITEMS), strict=True):
        assert result.waveform.dtype == np.float32
        assert result.waveform.shape == exact.waveform.shape  # durations stay in float32
        assert np.isfinite(result.waveform).all()
        assert not np.array_equal(result.waveform, exact.waveform)  # it did run in half precision


def test_items_whose_half_precision_overflowed_are_redone_in_float32(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: half precision that overflows in items 1 (NaN) and 2 (inf before the tanh: full-scale clipping)
    half = VitsSynthesizer.load(tiny_model_dir, device="cpu", dtype="bfloat16", batch_forward=True)
    reference = VitsSynthesizer.load(tiny_model_dir, device="cpu", batch_forward=True)
    real_forward = half._forward
    calls: list[tuple[int, torch.dtype | None]] = []

    def overflowing_forward(items: Any, dtype: torch.dtype | None) -> list[Waveform]:
        calls.append((len(items), dtype))
        waveforms = real_forward(items, dtype)
        if dtype is not None:
            waveforms[1] = Waveform(torch.full_like(waveforms[1].samples, float("nan")), sound=False)
            waveforms[2] = Waveform(torch.sign(waveforms[2].samples), sound=False)
        return waveforms

    monkeypatch.setattr(half, "_forward", overflowing_forward)

    # When
    results = half.synthesize(ITEMS)

    # Then: one half-precision pass, one float32 pass for the two spoiled items, which match float32 alone
    assert calls == [(4, torch.bfloat16), (2, None)]
    exact = reference.synthesize([ITEMS[1], ITEMS[2]])
    np.testing.assert_allclose(results[1].waveform, exact[0].waveform, atol=2e-4, rtol=0)
    np.testing.assert_allclose(results[2].waveform, exact[1].waveform, atol=2e-4, rtol=0)


def test_non_finite_float32_output_fails_the_call(
    sequential: VitsSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sequential,
        "_forward",
        lambda items, dtype: [Waveform(torch.full((100,), float("nan")), sound=False) for _ in items],
    )
    with pytest.raises(SynthesisFailed, match="non-finite"):
        sequential.synthesize([ITEMS[0]])


def test_the_forward_reports_overflow_per_item(batching: VitsSynthesizer) -> None:
    from tts_worker.synthesizer.vits_forward import forward_items

    model = batching.model
    items = [batching._prepare(item) for item in ITEMS[:2]]
    conv_post = model.decoder.conv_post
    original = conv_post.weight.detach().clone()
    try:
        with torch.inference_mode():
            assert forward_items(model, items).finite == [True, True]
            conv_post.weight.fill_(float("inf"))
            assert forward_items(model, items).finite == [False, False]
    finally:
        with torch.inference_mode():
            conv_post.weight.copy_(original)


def test_decoding_in_chunks_equals_one_decode(batching: VitsSynthesizer) -> None:
    from tts_worker.synthesizer.vits_forward import _decode, _decode_in_chunks, decoder_reach

    decoder = batching.model.decoder
    spectrogram = torch.randn(
        1, batching.model.config.flow_size, 200, generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        whole = _decode(decoder, spectrogram, None)
        for chunk in (1, 7, decoder_reach(decoder.config), 64, 199, 500):
            chunked = _decode_in_chunks(decoder, spectrogram, chunk)
            assert chunked.shape == whole.shape
            torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-5)


def test_a_long_item_on_the_cpu_is_decoded_in_chunks_with_the_same_audio(
    sequential: VitsSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tts_worker.synthesizer import vits

    item = SynthesisItem(text=" ".join(["Hyvää huomenta, tämä on pitkä testi."] * 4), seed=5)
    [whole] = sequential.synthesize([item])
    monkeypatch.setattr(vits, "DECODE_CHUNK_FRAMES", 40)
    [chunked] = sequential.synthesize([item])
    assert chunked.waveform.shape == whole.waveform.shape
    np.testing.assert_allclose(chunked.waveform, whole.waveform, atol=1e-4, rtol=0)
