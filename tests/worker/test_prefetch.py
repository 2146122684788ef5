"""Build-time prefetch: a model saved into a directory that the worker then loads without the hub."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from tts_common.adapters.model_store import MANIFEST, ModelStore
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
    assert "model 'no-such-org/mms-tts-xyz'" in caplog.text
    assert not (tmp_path / "model").exists()


def test_the_target_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_MODEL_DIR", raising=False)
    with pytest.raises(SystemExit):
        prefetch.main(["--model", "tiny-random"])


def test_languages_are_saved_each_into_its_own_directory(tmp_path: Path) -> None:
    # When the image's models directory is filled for two languages
    code = prefetch.main(["--languages", "fin,eng", "--template", "tiny-random-{language}", str(tmp_path)])

    # Then each model has its directory, named by model_dir_name, with its decoder export
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-random-eng", "tiny-random-fin"]
    for name in ("tiny-random-eng", "tiny-random-fin"):
        assert (tmp_path / name / "config.json").is_file()
        assert list((tmp_path / name / "onnx").glob("hifigan-*.onnx"))


def test_hub_ids_get_safe_directory_names() -> None:
    assert prefetch.model_ids_for(["fin", "swh"]) == ["facebook/mms-tts-fin", "facebook/mms-tts-swh"]
    with pytest.raises(SystemExit):
        prefetch.main(["--models", "../escape", "/tmp/x"])
    with pytest.raises(SystemExit):
        prefetch.main(["--languages", "fin", "--template", "no-placeholder", "/tmp/x"])


def test_to_store_uploads_each_model_with_a_manifest_last(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="audio")
    monkeypatch.setenv("AUDIO_BUCKET_NAME", "audio")
    monkeypatch.delenv("TTS_MODEL_STORE_BUCKET", raising=False)

    # When the store is filled the way `make models` does it
    code = prefetch.main(
        ["--to-store", "--languages", "swh", "--template", "tiny-random-{language}", "--prefix", "m/"]
    )

    # Then the saved directory and its ONNX export are under the prefix, the manifest listing them
    assert code == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="audio", Prefix="m/")["Contents"]}
    assert {"m/tiny-random-swh/config.json", f"m/tiny-random-swh/{MANIFEST}"} <= keys
    assert any(k.startswith("m/tiny-random-swh/onnx/hifigan-") for k in keys)
    store = ModelStore(s3_client=s3, bucket="audio", prefix="m/")
    assert store.names() == ["tiny-random-swh"]
    listed = store.manifest("tiny-random-swh")
    assert listed is not None
    assert {f"m/tiny-random-swh/{f.path}" for f in listed} == keys - {f"m/tiny-random-swh/{MANIFEST}"}
    # and a download of it is a directory the worker loads
    assert store.download("tiny-random-swh", tmp_path / "copy")
    assert VitsSynthesizer.load(tmp_path / "copy", device="cpu").is_speakable("habari")


def test_to_store_needs_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIO_BUCKET_NAME", raising=False)
    monkeypatch.delenv("TTS_MODEL_STORE_BUCKET", raising=False)
    with pytest.raises(SystemExit):
        prefetch.main(["--to-store", "--models", "tiny-random"])


def test_the_local_stack_fills_the_store_with_three_distinct_languages(
    aws: None, tmp_path: Path, model_cache_dir: Path
) -> None:
    import boto3

    from local.models import LOCAL_LANGUAGES, publish_local_models, worker_environment

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="local-audio")

    ids = publish_local_models(
        bucket="local-audio", endpoint_url=None, work_dir=tmp_path, generated_cache=model_cache_dir
    )

    assert ids == [f"tiny-random-{code}" for code in LOCAL_LANGUAGES]
    assert len(LOCAL_LANGUAGES) >= 3
    assert ModelStore(s3_client=s3, bucket="local-audio").names() == sorted(ids)
    weights = {i: (tmp_path / i / "model.safetensors").read_bytes() for i in ids}
    assert len(set(weights.values())) == len(ids)
    env = worker_environment(bucket="local-audio", cache_dir=tmp_path / "cache")
    assert env["TTS_MODEL_TEMPLATE"] == "tiny-random-{language}"
    assert env["TTS_LANGUAGES"] == "fin,eng,swh"
    assert env["TTS_ALLOW_HUB"] == "false"
