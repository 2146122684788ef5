"""Settings are read once and a bad value fails loudly, naming the variable."""

from __future__ import annotations

import pytest

from tts_common.exceptions import ConfigurationError
from tts_common.settings import ApiSettings, WorkerSettings, load_settings

REQUIRED = {
    "TASKS_TABLE_NAME": "t",
    "AUDIO_BUCKET_NAME": "b",
    "JOBS_QUEUE_URL": "http://q",
    "EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(ApiSettings)
    assert settings.tts_model == "facebook/mms-tts-fin"
    assert settings.tts_language == "fi"
    assert settings.synthesis_params.model_id == "facebook/mms-tts-fin"


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in REQUIRED:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigurationError, match="TASKS_TABLE_NAME"):
        load_settings(ApiSettings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TTS_DEVICE", "tpu"),
        ("TTS_MAX_BATCH", "0"),
        ("MAX_RECEIVE_COUNT", "many"),
        ("TTS_LANGUAGE", "Finnish!"),
        ("TTS_DECODER_RUNTIME", "tensorrt"),
    ],
)
def test_bad_value_is_named(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(WorkerSettings)
