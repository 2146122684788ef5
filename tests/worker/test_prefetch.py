"""Build-time prefetch: a model saved into a directory that the worker then loads without the hub."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from tts_worker import prefetch
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.vits import VitsSynthesizer

pytestmark = pytest.mark.model


def test_a_local_model_is_copied_into_a_loadable_directory(tiny_model_dir: Path, tmp_path: Path) -> None:
    # When
    code = prefetch.main(["--model", str(tiny_model_dir), str(tmp_path / "model")])

    # Then
    assert code == 0
    copy = VitsSynthesizer.load(tmp_path / "model", device="cpu")
    original = VitsSynthesizer.load(tiny_model_dir, device="cpu")
    item = SynthesisItem(text="Hei maailma.", seed=3)
    assert (copy.synthesize([item])[0].waveform == original.synthesize([item])[0].waveform).all()


def test_a_generated_model_is_built_into_the_target(tmp_path: Path) -> None:
    assert prefetch.main(["--model", "tiny-random", str(tmp_path / "tiny")]) == 0
    assert VitsSynthesizer.load(tmp_path / "tiny", device="cpu").is_speakable("hei")


def test_an_unreachable_hub_model_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    code = prefetch.main(["--model", "no-such-org/mms-tts-xyz", str(tmp_path / "model")])

    assert code == 2
    assert "TTS_MODEL='no-such-org/mms-tts-xyz'" in caplog.text
    assert not (tmp_path / "model").exists()


def test_the_target_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_MODEL_DIR", raising=False)
    with pytest.raises(SystemExit):
        prefetch.main(["--model", "tiny-random"])
