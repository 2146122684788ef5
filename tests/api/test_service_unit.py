"""The submit logic and the request schemas without AWS: fakes stand in for the adapters."""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tts_api import service
from tts_api.errors import status_for
from tts_api.schemas import ConvertMultipleRequest, ConvertRequest
from tts_common import exceptions
from tts_common.domain import TaskStatus, normalize_text
from tts_common.settings import ApiSettings
from tts_common.task import Task
from tts_common.voice import AudioFormat, VoiceSpec, dedupe_key

SETTINGS = ApiSettings.model_validate(
    {
        "TASKS_TABLE_NAME": "t",
        "AUDIO_BUCKET_NAME": "b",
        "JOBS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
        "EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "INLINE_TEXT_MAX_BYTES": 1024,
    }
)


@dataclass
class Fakes:
    """In-memory adapters that log every call in order, and can be told to fail."""

    log: list[tuple[str, Any]] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)

    # TaskRepository
    def create_or_get(self, task: Task) -> tuple[Task, bool]:
        self._call("create", task.task_id)
        for existing in self.tasks.values():
            if existing.dedupe_key == task.dedupe_key:
                return replace(existing, dedupe_hits=existing.dedupe_hits + 1), False
        self.tasks[task.task_id] = task
        return task, True

    def mark_enqueued(self, task_id: str, *, at: datetime) -> None:
        self._call("mark_enqueued", task_id)

    # AudioStore
    def put_text(self, key: str, text: str) -> None:
        self._call("put_text", key)

    # JobQueue
    def send_many(self, jobs: list[Any]) -> None:
        self._call("send", [j.task_id for j in jobs])

    # EventPublisher
    def publish(self, event: Any) -> None:
        self._call("publish", (event.task_id, event.status))

    def _call(self, name: str, arg: Any) -> None:
        if name in self.fail:
            raise EndpointConnectionError(endpoint_url=f"https://{name}.invalid")  # AWS did not answer
        self.log.append((name, arg))

    def submit(self, texts: list[str], *, batch: bool = True, **kw: Any) -> list[service.Submission]:
        return service.submit_texts(
            tenant_id=kw.pop("tenant_id", "acme"),
            texts=texts,
            custom_filename=kw.pop("custom_filename", None),
            voice=service.VoiceRequest(language=kw.pop("language", None)),
            batch=batch,
            settings=kw.pop("settings", SETTINGS),
            repository=self,  # type: ignore[arg-type]
            audio_store=self,  # type: ignore[arg-type]
            job_queue=self,  # type: ignore[arg-type]
            publisher=self,  # type: ignore[arg-type]
            # Any instant will do: the fakes never judge expiry, so nothing compares it with a clock.
            clock=lambda: datetime(2025, 11, 27, tzinfo=UTC),
        )


# -- submit ordering and failure handling -------------------------------------------------------------


def test_a_hundred_texts_are_one_send_and_then_a_hundred_queued_events():
    fakes = Fakes()

    result = fakes.submit([f"Lause {i}" for i in range(100)])

    assert len(result) == 100
    assert all(s.created for s in result)
    names = [name for name, _ in fakes.log]
    assert names == ["create"] * 100 + ["send"] + ["mark_enqueued"] * 100 + ["publish"] * 100
    assert fakes.log[100][1] == [s.task.task_id for s in result]


def test_when_the_enqueue_fails_the_task_stays_unannounced_for_the_sweeper():
    fakes = Fakes(fail={"send"})

    with pytest.raises(exceptions.DependencyUnavailable) as raised:
        fakes.submit(["Hei"])

    assert status_for(raised.value) == 503
    assert raised.value.details == {"dependency": "jobs queue", "reason": "EndpointConnectionError"}
    assert len(fakes.tasks) == 1
    assert [name for name, _ in fakes.log] == ["create"]  # no `queued` event: the sweeper re-enqueues it


def test_when_the_announcement_fails_the_submission_still_succeeds():
    fakes = Fakes(fail={"publish"})

    [submission] = fakes.submit(["Hei"])

    assert submission.created
    assert [name for name, _ in fakes.log] == ["create", "send", "mark_enqueued"]


def test_a_large_text_is_stored_before_the_task_exists():
    fakes = Fakes()

    [submission] = fakes.submit(["ö" * 600])  # 1200 bytes > 1024

    assert [name for name, _ in fakes.log] == ["put_text", "create", "send", "mark_enqueued", "publish"]
    assert submission.task.text is None
    assert submission.task.text_key == f"inputs/{submission.task.task_id}.txt"


def test_when_the_bucket_fails_no_task_is_created():
    fakes = Fakes(fail={"put_text"})

    with pytest.raises(exceptions.DependencyUnavailable):
        fakes.submit(["ö" * 600])

    assert fakes.tasks == {}


def test_a_dedupe_hit_sends_nothing():
    fakes = Fakes()
    [first] = fakes.submit(["Hei"], custom_filename="eka")
    fakes.log.clear()

    [second] = fakes.submit(["Hei "], custom_filename="toka")

    assert not second.created
    assert second.task.task_id == first.task.task_id
    assert second.task.custom_filename == "eka"
    assert [name for name, _ in fakes.log] == ["create"]


# -- validation: properties over every input ---------------------------------------------------------

_blank_chars = st.sampled_from(list(" \t\n\r\x0b\x0c\u00a0\u2003\u3000\u200b\u200e\ufeff\x00\x07\x1b\x7f"))


@settings(max_examples=200, deadline=None)
@given(st.lists(_blank_chars, min_size=1, max_size=40).map("".join))
def test_any_text_of_only_whitespace_or_control_characters_is_refused_before_any_call(text):
    fakes = Fakes()

    with pytest.raises(exceptions.InvalidInput) as raised:
        fakes.submit([text], batch=False)

    assert status_for(raised.value) == 422
    assert raised.value.details["errors"][0]["loc"] == ["body", "text"]
    assert fakes.log == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=10), st.data())
def test_one_bad_text_anywhere_refuses_the_batch_before_any_call(texts, data):
    bad_index = data.draw(st.integers(0, len(texts)), label="bad_index")
    texts = [*texts[:bad_index], " \n\t", *texts[bad_index:]]
    fakes = Fakes()

    with pytest.raises(exceptions.InvalidInput) as raised:
        fakes.submit(texts)

    bad = [e["loc"][2] for e in raised.value.details["errors"]]
    assert bad_index in bad
    assert all(not normalize_text(texts[i]) for i in bad)
    assert fakes.log == []


_pathlike = st.tuples(st.text(max_size=20), st.sampled_from(["/", "\\", ".."]), st.text(max_size=20)).map(
    "".join
)


@settings(max_examples=300, deadline=None)
@given(_pathlike)
def test_any_filename_with_a_separator_or_dotdot_is_refused(name):
    with pytest.raises(ValidationError) as raised:
        ConvertRequest(text="Hei", custom_filename=name)
    assert raised.value.errors()[0]["loc"] == ("custom_filename",)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_ äöåÄÖÅ", min_size=1, max_size=200))
def test_plain_names_are_accepted_trimmed(name):
    if not name.strip():
        with pytest.raises(ValidationError):
            ConvertRequest(text="Hei", custom_filename=name)
        return
    assert ConvertRequest(text="Hei", custom_filename=name).custom_filename == name.strip()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Cc"]), min_size=1, max_size=5), st.text(max_size=10))
def test_any_filename_with_a_control_character_is_refused(controls, rest):
    with pytest.raises(ValidationError):
        ConvertRequest(text="Hei", custom_filename=f"a{controls}{rest}")


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=50))
def test_every_accepted_text_is_queued_in_normal_form(text):
    fakes = Fakes()
    try:
        [submission] = fakes.submit([text], batch=False)
    except exceptions.InvalidInput:
        assert not normalize_text(text)
        return
    assert submission.task.text == normalize_text(text)
    assert submission.task.status is TaskStatus.QUEUED


def test_unknown_fields_and_wrong_types_are_refused():
    with pytest.raises(ValidationError):
        ConvertRequest.model_validate({"text": "Hei", "pitch": 2})
    with pytest.raises(ValidationError):
        ConvertRequest.model_validate({"text": ["Hei"]})
    with pytest.raises(ValidationError):
        ConvertMultipleRequest.model_validate({"texts": "Hei"})


@pytest.mark.parametrize("language", ["sv", "en", "eng", "fi-x", "", "swahili"])
def test_only_a_served_language_is_accepted(language):
    fakes = Fakes()
    with pytest.raises(exceptions.UnsupportedLanguage) as raised:
        fakes.submit(["Hei"], language=language)
    assert raised.value.details == {"language": language, "supported": ["fin"]}
    assert fakes.log == []  # refused before any call


# -- the voice: built once at submit from the request and the deployment's defaults -------------------

SERVING_THREE = SETTINGS.model_copy(
    update={
        "tts_languages": ("fin", "eng", "swh"),
        "tts_model_overrides": (("swh", "/opt/models/swh"),),
        "tts_speed": 1.1,
        "tts_format": AudioFormat.FLAC,
    }
)


def test_a_voice_takes_the_deployments_defaults_for_what_the_request_leaves_out():
    voice = service.voice_for(service.VoiceRequest(), settings=SERVING_THREE)
    assert voice == VoiceSpec(
        language="fin",
        model_id="facebook/mms-tts-fin",
        speed=1.1,
        noise_scale=SETTINGS.tts_noise_scale,
        noise_scale_duration=SETTINGS.tts_noise_scale_duration,
        format=AudioFormat.FLAC,
        sample_rate=None,
        max_piece_chars=SETTINGS.tts_max_piece_chars,
    )


def test_a_voice_takes_what_the_request_chose():
    asked = service.VoiceRequest(language="SWH", speed=2.0, format=AudioFormat.MP3, sample_rate=24_000)
    voice = service.voice_for(asked, settings=SERVING_THREE)
    assert (voice.language, voice.model_id, voice.speed, voice.format, voice.sample_rate) == (
        "swh",
        "/opt/models/swh",
        2.0,
        AudioFormat.MP3,
        24_000,
    )


@pytest.mark.parametrize(
    ("audio_format", "rate"),
    [(AudioFormat.OGG_OPUS, 22_050), (AudioFormat.OGG_OPUS, 44_100), (None, 11_025)],
)
def test_a_rate_the_format_cannot_hold_is_a_422_on_sample_rate(audio_format, rate):
    # None: the deployment's default format (flac here), which holds every offered rate but not 11025
    fakes = Fakes()
    with pytest.raises(exceptions.InvalidInput) as raised:
        service.voice_for(service.VoiceRequest(format=audio_format, sample_rate=rate), settings=SERVING_THREE)
    assert status_for(raised.value) == 422
    [error] = raised.value.details["errors"]
    assert (error["loc"], error["type"]) == (["body", "sample_rate"], "unsupported_sample_rate")
    assert fakes.log == []


def test_the_default_format_is_checked_against_the_asked_rate():
    opus_by_default = SETTINGS.model_copy(update={"tts_format": AudioFormat.OGG_OPUS})
    with pytest.raises(exceptions.InvalidInput):
        service.voice_for(service.VoiceRequest(sample_rate=22_050), settings=opus_by_default)
    assert (
        service.voice_for(service.VoiceRequest(sample_rate=48_000), settings=opus_by_default).sample_rate
        == 48_000
    )


@given(speed=st.floats(0.25, 4.0), audio_format=st.sampled_from(list(AudioFormat)))
def test_the_dedupe_key_follows_the_voice_and_never_the_filename(speed, audio_format):
    fakes = Fakes()
    [a] = fakes.submit(["Hei"], batch=False, custom_filename="a")
    [b] = fakes.submit(["Hei"], batch=False, custom_filename="b")
    assert b.task.task_id == a.task.task_id  # the filename stays out of the key
    other = service.voice_for(service.VoiceRequest(speed=speed, format=audio_format), settings=SETTINGS)
    assert (dedupe_key("Hei", other, tenant_id="acme") == a.task.dedupe_key) is (other == a.task.voice)


def test_the_same_text_of_two_tenants_is_two_tasks():
    fakes = Fakes()
    [a] = fakes.submit(["Hei"], batch=False, tenant_id="acme")
    [b] = fakes.submit(["Hei"], batch=False, tenant_id="globex")
    assert (a.created, b.created) == (True, True)
    assert a.task.task_id != b.task.task_id
    assert a.task.dedupe_key != b.task.dedupe_key
    assert (a.task.tenant_id, b.task.tenant_id) == ("acme", "globex")


@pytest.mark.parametrize(
    "fields",
    [
        {"speed": 0.2},
        {"speed": 4.01},
        {"speed": "fast"},
        {"format": "m4a"},
        {"sample_rate": 11_025},
        {"sample_rate": 16_000.5},
        {"language": ""},
    ],
)
def test_voice_fields_outside_their_ranges_are_refused_by_the_schema(fields):
    with pytest.raises(ValidationError):
        ConvertRequest.model_validate({"text": "Hei", **fields})
    with pytest.raises(ValidationError):
        ConvertMultipleRequest.model_validate({"texts": ["Hei"], **fields})


# -- the error mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (exceptions.InvalidInput("x"), 422),
        (exceptions.UnsupportedLanguage("x"), 422),
        (exceptions.InvalidPageToken(), 400),
        (exceptions.TaskNotFound("x"), 404),
        (exceptions.TaskNotReady("x", "queued"), 409),
        (exceptions.DependencyUnavailable("x"), 503),
        (exceptions.ConcurrentUpdate("x"), 503),
        (exceptions.ConfigurationError("x"), 500),
        (exceptions.SynthesisFailed("x"), 500),
        (exceptions.TTSError("x"), 500),
    ],
)
def test_each_typed_error_has_one_status(error, status):
    assert status_for(error) == status
