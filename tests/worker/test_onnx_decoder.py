"""The CPU decoder on ONNX Runtime: the same waveform as eager up to float rounding, exported once per set of
weights, never trusted unchecked, and never a reason for the worker not to start under `auto`."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tts_common.exceptions import ModelLoadError
from tts_common.settings import DecoderRuntime
from tts_worker import prefetch
from tts_worker.synthesizer import onnx_decoder
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.vits import VitsSynthesizer, resolve_decoder_runtime
from tts_worker.synthesizer.vits_forward import _decode, _decode_in_chunks

pytestmark = pytest.mark.model

ITEMS = [
    SynthesisItem(text="Hyvää huomenta, tämä on testi.", seed=11),
    SynthesisItem(text="Kissa.", seed=12, speaking_rate=1.3),
    SynthesisItem(text="Suomen kieli on uralilainen kieli, jota puhuu viisi miljoonaa.", seed=13),
]


@pytest.fixture(scope="module")
def eager(tiny_model_dir: Path) -> VitsSynthesizer:
    return VitsSynthesizer.load(tiny_model_dir, device="cpu", decoder_runtime="torch")


def onnx_files(directory: Path) -> list[Path]:
    return sorted((directory / onnx_decoder.DIRECTORY_NAME).glob("hifigan-*.onnx"))


def test_auto_runs_the_cpu_decoder_on_onnx_runtime_with_the_eager_waveform(
    tiny_model_dir: Path, tmp_path: Path, eager: VitsSynthesizer
) -> None:
    # When
    onnx = VitsSynthesizer.load(tiny_model_dir, device="cpu", cpu_graph="torch", cache_dir=tmp_path)

    # Then: same lengths, same samples up to float rounding
    assert onnx.decoder_runtime == "onnxruntime"
    for fast, exact in zip(onnx.synthesize(ITEMS), eager.synthesize(ITEMS), strict=True):
        assert fast.waveform.shape == exact.waveform.shape
        np.testing.assert_allclose(fast.waveform, exact.waveform, atol=1e-4, rtol=0)
        assert np.abs(fast.waveform).max() > 0.01  # real audio, not silence that trivially matches


def test_the_export_is_written_once_and_reused_by_its_fingerprint(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a first load exported the decoder into the cache
    first = VitsSynthesizer.load(tiny_model_dir, device="cpu", cache_dir=tmp_path)
    [exported] = onnx_files(tmp_path)
    assert exported.name == onnx_decoder.file_name(first.model.decoder)

    # When: a second load, with exporting made impossible
    def no_export(*_: Any, **__: Any) -> Path:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_decoder, "export", no_export)
    second = VitsSynthesizer.load(tiny_model_dir, device="cpu", cache_dir=tmp_path)

    # Then
    assert second.decoder_runtime == "onnxruntime"
    assert onnx_files(tmp_path) == [exported]


def test_other_weights_get_another_fingerprint(tiny_model_dir: Path, eager: VitsSynthesizer) -> None:
    changed = copy.deepcopy(eager.model.decoder)
    with torch.no_grad():
        changed.conv_post.weight.add_(1e-3)
    assert onnx_decoder.fingerprint(changed) != onnx_decoder.fingerprint(eager.model.decoder)
    assert onnx_decoder.fingerprint(copy.deepcopy(eager.model.decoder)) == onnx_decoder.fingerprint(
        eager.model.decoder
    )


def test_an_export_that_does_not_compute_this_decoder_fails_verification(
    eager: VitsSynthesizer, tmp_path: Path
) -> None:
    # Given: another decoder's export
    other = copy.deepcopy(eager.model.decoder)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(-1.5)
    wrong = onnx_decoder.OnnxDecoder(onnx_decoder.export(other, tmp_path), threads=1)

    # When / Then
    with pytest.raises(onnx_decoder.DecoderExportError, match="differs from the eager decoder"):
        onnx_decoder.verify(eager.model.decoder, wrong)


@pytest.mark.parametrize("spoil", ["another decoder", "not onnx at all"])
def test_an_unusable_export_is_passed_over_and_exported_anew(
    eager: VitsSynthesizer, tmp_path: Path, spoil: str
) -> None:
    # Given: under this decoder's name where the worker looks first, something it cannot use
    decoder = eager.model.decoder
    planted = tmp_path / "model" / onnx_decoder.DIRECTORY_NAME / onnx_decoder.file_name(decoder)
    planted.parent.mkdir(parents=True)
    if spoil == "another decoder":
        other = copy.deepcopy(decoder)
        with torch.no_grad():
            other.conv_post.weight.mul_(-3.0)
        shutil.copy(onnx_decoder.export(other, tmp_path / "other"), planted)
    else:
        planted.write_bytes(b"truncated by a full disk")

    # When
    loaded, difference = onnx_decoder.load(
        decoder, search=[planted.parent], cache_dir=tmp_path / "cache", threads=1
    )

    # Then: a fresh export in the cache, verified
    assert loaded.path == tmp_path / "cache" / planted.name
    assert difference <= onnx_decoder.TOLERANCE


def test_an_export_is_readable_by_every_user(eager: VitsSynthesizer, tmp_path: Path) -> None:
    # The image is built as root and run as another user (Lambda, ECS USER 10001).
    exported = onnx_decoder.export(eager.model.decoder, tmp_path)
    assert exported.stat().st_mode & 0o777 == 0o644


def test_chunked_decoding_on_onnx_runtime_equals_one_eager_decode(
    eager: VitsSynthesizer, tmp_path: Path
) -> None:
    decoder = eager.model.decoder
    session, _ = onnx_decoder.load(decoder, search=[], cache_dir=tmp_path, threads=1)
    spectrogram = torch.randn((1, decoder.config.flow_size, 150), generator=torch.Generator().manual_seed(1))

    with torch.inference_mode():
        whole = _decode(decoder, spectrogram, None)
        chunked = _decode_in_chunks(decoder, spectrogram, 40, session)

    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), atol=1e-4, rtol=0)


def test_under_auto_a_failing_onnx_runtime_leaves_the_decoder_on_torch(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise onnx_decoder.DecoderExportError("exporting the decoder failed: disk full")

    monkeypatch.setattr(onnx_decoder, "load", broken)

    with caplog.at_level(logging.WARNING, logger="tts_worker"):
        synthesizer = VitsSynthesizer.load(tiny_model_dir, device="cpu", cache_dir=tmp_path)

    assert synthesizer.decoder_runtime == "torch"
    assert synthesizer.synthesize(ITEMS[:1])[0].duration_s > 0
    assert "decoder stays on torch" in caplog.text


def test_asked_for_explicitly_a_failing_onnx_runtime_stops_the_start(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise onnx_decoder.DecoderExportError("exporting the decoder failed: disk full")

    monkeypatch.setattr(onnx_decoder, "load", broken)

    with pytest.raises(ModelLoadError, match=r"TTS_DECODER_RUNTIME=onnxruntime failed: .*disk full"):
        VitsSynthesizer.load(tiny_model_dir, device="cpu", decoder_runtime="onnxruntime", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("requested", "device", "installed", "expected"),
    [
        ("auto", "cpu", True, "onnxruntime"),
        ("auto", "cpu", False, "torch"),
        ("auto", "cuda", True, "torch"),
        ("torch", "cpu", True, "torch"),
        ("onnxruntime", "cpu", True, "onnxruntime"),
    ],
)
def test_the_decoder_runtime_follows_device_and_installation(
    requested: DecoderRuntime, device: str, installed: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_decoder, "available", lambda: installed)
    assert resolve_decoder_runtime(requested, torch.device(device)) == expected


@pytest.mark.parametrize(
    ("requested", "device", "installed", "message"),
    [
        ("onnxruntime", "cuda", True, "CPU only"),
        ("onnxruntime", "cpu", False, "not installed"),
    ],
)
def test_an_impossible_decoder_runtime_is_a_start_up_error(
    requested: DecoderRuntime, device: str, installed: bool, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_decoder, "available", lambda: installed)
    with pytest.raises(ModelLoadError, match=message):
        resolve_decoder_runtime(requested, torch.device(device))


def test_prefetch_puts_the_export_where_the_worker_looks_first(tmp_path: Path) -> None:
    # Given: a model directory built as the image build does
    assert prefetch.main(["--model", "tiny-random", str(tmp_path / "model")]) == 0
    assert len(onnx_files(tmp_path / "model")) == 1

    # When: the worker loads it with an empty cache
    synthesizer = VitsSynthesizer.load(
        tmp_path / "model", device="cpu", decoder_runtime="onnxruntime", cache_dir=tmp_path / "cache"
    )

    # Then: nothing was exported at start-up
    assert synthesizer.decoder_runtime == "onnxruntime"
    assert not (tmp_path / "cache").exists()


def test_prefetch_can_skip_the_export(tmp_path: Path) -> None:
    assert prefetch.main(["--model", "tiny-random", "--no-onnx-decoder", str(tmp_path / "model")]) == 0
    assert onnx_files(tmp_path / "model") == []


def test_the_exports_of_several_models_share_a_cache_without_clashing(
    model_cache_dir: Path, tmp_path: Path
) -> None:
    from tts_worker.synthesizer.random_models import ensure_generated

    # Given two languages' models without exports of their own, one worker's cache
    loaded = [
        VitsSynthesizer.load(
            ensure_generated(name, model_cache_dir),
            device="cpu",
            decoder_runtime="onnxruntime",
            cache_dir=tmp_path,
        )
        for name in ("tiny-random-fin", "tiny-random-eng")
    ]

    # Then each decoder has its own export, named by its weights
    paths = {getattr(s.cpu_decoder, "path", None) for s in loaded}
    assert len(paths) == 2
    assert len(onnx_files(tmp_path)) == 2
