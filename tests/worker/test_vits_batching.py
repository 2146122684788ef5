"""The batched forward on tiny-random (CPU): per-item noise, equal to the item alone, half precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tts_common.exceptions import SynthesisFailed
from tts_worker.audio import encode_wav
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.vits import VitsSynthesizer, Waveform

pytestmark = pytest.mark.model

ITEMS = [
    SynthesisItem(text="Hyvää huomenta, tämä on testi.", seed=11),
    SynthesisItem(text="Kissa.", seed=12, speaking_rate=1.3),
    SynthesisItem(text="Suomen kieli on uralilainen kieli, jota puhuu viisi miljoonaa.", seed=13),
    SynthesisItem(text="Järvellä oli hiljaista.", seed=14, noise_scale=0.3, noise_scale_duration=0.5),
]


@pytest.fixture(scope="module")
def batching(tiny_model_dir: Path) -> VitsSynthesizer:
    """The CUDA code path (one padded forward per call), run on the CPU."""
    return VitsSynthesizer.load(tiny_model_dir, device="cpu", batch_forward=True)


@pytest.fixture(scope="module")
def sequential(tiny_model_dir: Path) -> VitsSynthesizer:
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


def test_an_item_in_a_padded_batch_equals_the_item_alone(batching: VitsSynthesizer) -> None:
    # When
    together = batching.synthesize(ITEMS)
    alone = [batching.synthesize([item])[0] for item in ITEMS]

    # Then: same length, same samples up to float rounding (the padding no longer leaks into the tail)
    for batched, single in zip(together, alone, strict=True):
        assert batched.waveform.shape == single.waveform.shape
        np.testing.assert_allclose(batched.waveform, single.waveform, atol=2e-4, rtol=0)


def test_a_batch_gives_the_same_audio_whatever_the_neighbours(batching: VitsSynthesizer) -> None:
    first = batching.synthesize(ITEMS)[0]
    reordered = batching.synthesize([ITEMS[2], ITEMS[0]])[1]
    np.testing.assert_allclose(first.waveform, reordered.waveform, atol=2e-4, rtol=0)


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
