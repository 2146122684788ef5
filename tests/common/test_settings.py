"""Settings are read once and a bad value fails loudly, naming the variable."""

from __future__ import annotations

import pytest

from tts_common.exceptions import ConfigurationError
from tts_common.settings import ApiSettings, TaskEventsSettings, WorkerSettings, load_settings
from tts_common.voice import AudioFormat

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
    served = settings.languages
    assert (served.codes, served.default) == (("fin",), "fin")
    assert served.model_id("fin") == "facebook/mms-tts-fin"
    assert (settings.tts_speed, settings.tts_format) == (1.0, AudioFormat.WAV)
    assert settings.tts_max_piece_chars == 400


def test_languages_are_canonicalized_and_each_gets_its_model(env: pytest.MonkeyPatch) -> None:
    env.setenv("TTS_LANGUAGES", " fi, ENG ,swh")
    env.setenv("TTS_DEFAULT_LANGUAGE", "en")
    env.setenv("TTS_MODEL_TEMPLATE", "org/tts-{language}")
    env.setenv("TTS_MODEL_OVERRIDES", "fin=/opt/models/fin, swh = other/swahili")
    served = load_settings(ApiSettings).languages
    assert (served.codes, served.default) == (("fin", "eng", "swh"), "eng")
    assert [served.model_id(c) for c in served.codes] == ["/opt/models/fin", "org/tts-eng", "other/swahili"]


def test_settings_with_overrides_stay_hashable(env: pytest.MonkeyPatch) -> None:
    # The API caches its clients per settings object (tts_api.deps).
    env.setenv("TTS_MODEL_OVERRIDES", "fin=tiny-random")
    assert hash(load_settings(ApiSettings)) == hash(load_settings(ApiSettings))


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
        ("TTS_DECODER_RUNTIME", "tensorrt"),
        ("TTS_LANGUAGES", "Finnish!"),
        ("TTS_LANGUAGES", "fin,xx"),
        ("TTS_LANGUAGES", "fi,fin"),
        ("TTS_LANGUAGES", " , "),
        ("TTS_DEFAULT_LANGUAGE", "eng"),
        ("TTS_DEFAULT_LANGUAGE", "zzz"),
        ("TTS_MODEL_TEMPLATE", "facebook/mms-tts-fin"),
        ("TTS_MODEL_OVERRIDES", "fin"),
        ("TTS_MODEL_OVERRIDES", "eng=some/model"),
        ("TTS_MODEL_OVERRIDES", "xx=some/model"),
    ],
)
def test_bad_value_is_named(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(WorkerSettings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TTS_SPEED", "0.1"),
        ("TTS_SPEED", "4.5"),
        ("TTS_NOISE_SCALE", "3"),
        ("TTS_NOISE_SCALE_DURATION", "-1"),
        ("TTS_MAX_PIECE_CHARS", "10"),
        ("TTS_FORMAT", "m4a"),
    ],
)
def test_a_bad_voice_default_is_named_where_it_is_read(
    env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # The voice defaults are the API's alone: the worker and the sweeper take the voice stored with the task.
    env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(ApiSettings)
    load_settings(WorkerSettings)
    load_settings(TaskEventsSettings)
