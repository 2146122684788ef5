"""Submitting conversions on moto: tasks, jobs on the queue, `queued` events, dedupe, validation."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from tests.api.support import TENANT, aws_client, events_on_queue, jobs_on_queue
from tts_common.domain import TaskStatus, normalize_text, text_key_for
from tts_common.voice import AudioFormat, VoiceSpec, dedupe_key

TEXT = "Hyvää huomenta, maailma!"


def test_submit_creates_a_task_enqueues_its_job_and_announces_it(
    client, resources, api_settings, recorded_metrics
):
    # When
    response = client.post("/api/v1/tts/convert", json={"text": f"  {TEXT}\n", "custom_filename": "aamu"})

    # Then
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "queued"
    assert body["deduplicated"] is False
    assert body["custom_filename"] == "aamu"
    assert len(body["conversion_id"]) == 32
    jobs = jobs_on_queue(resources)
    assert len(jobs) == 1
    job = jobs[0]
    assert job.task_id == body["conversion_id"]
    assert job.text == TEXT  # normalized: trimmed
    assert job.text_key is None
    # The voice is built once at submit from the deployment's defaults; it alone (with the text) is keyed.
    assert job.voice == VoiceSpec(
        language="fin",
        model_id="facebook/mms-tts-fin",
        speed=api_settings.tts_speed,
        noise_scale=api_settings.tts_noise_scale,
        noise_scale_duration=api_settings.tts_noise_scale_duration,
        format=AudioFormat.WAV,
        sample_rate=None,
        max_piece_chars=api_settings.tts_max_piece_chars,
    )
    assert job.dedupe_key == dedupe_key(TEXT, job.voice, tenant_id=TENANT)
    assert job.audio_key == f"audio/{body['conversion_id']}.wav"
    events = events_on_queue(resources)
    assert [(e.task_id, e.status) for e in events] == [(body["conversion_id"], TaskStatus.QUEUED)]
    assert recorded_metrics.total("TasksSubmitted") == 1
    assert recorded_metrics.total("DedupeHits") == 0


def test_same_text_twice_is_one_conversion_and_one_job(client, resources, recorded_metrics):
    # Given
    first = client.post("/api/v1/tts/convert", json={"text": TEXT, "custom_filename": "first"}).json()

    # When: the same text modulo whitespace, another filename
    second = client.post("/api/v1/tts/convert", json={"text": f"{TEXT}   ", "custom_filename": "second"})

    # Then
    assert second.status_code == 202
    assert second.json()["conversion_id"] == first["conversion_id"]
    assert second.json()["deduplicated"] is True
    assert second.json()["custom_filename"] == "first"  # the first submission's name stands
    assert second.json()["submitted_at"] == first["submitted_at"]
    assert len(jobs_on_queue(resources)) == 1
    assert len(events_on_queue(resources)) == 1
    assert recorded_metrics.total("DedupeHits") == 1
    stats = client.get("/api/v1/tts/stats").json()
    assert stats["submitted"] == 1
    assert stats["dedupe_hits"] == 1


def test_concurrent_identical_submissions_make_one_task_and_one_job(app, resources, auth):
    # Given: clients built up front, the barrier releases all 32 at once
    clients = [TestClient(app, headers=auth) for _ in range(32)]
    barrier = threading.Barrier(len(clients))
    results: list[dict] = []
    lock = threading.Lock()

    def submit(c: TestClient) -> None:
        barrier.wait()
        response = c.post("/api/v1/tts/convert", json={"text": "Kilpajuoksu"})
        with lock:
            results.append({**response.json(), "http": response.status_code})

    # When
    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # Then
    assert [r["http"] for r in results] == [202] * 32
    assert len({r["conversion_id"] for r in results}) == 1
    assert sum(not r["deduplicated"] for r in results) == 1
    assert len(jobs_on_queue(resources)) == 1
    assert len(events_on_queue(resources)) == 1


def test_a_large_text_goes_to_the_bucket_and_the_job_points_at_it(make_app, resources, auth):
    # Given: texts above 1 KiB of UTF-8 are not inlined
    client = TestClient(make_app(inline_text_max_bytes=1024), headers=auth)
    text = "ä" * 600  # 1200 bytes

    # When
    response = client.post("/api/v1/tts/convert", json={"text": text})

    # Then
    assert response.status_code == 202
    task_id = response.json()["conversion_id"]
    [job] = jobs_on_queue(resources)
    assert job.text is None
    assert job.text_key == text_key_for(task_id)
    stored = aws_client("s3").get_object(Bucket=resources.bucket_name, Key=job.text_key)
    assert stored["Body"].read().decode("utf-8") == text


def test_a_small_text_rides_inline(make_app, resources, auth):
    client = TestClient(make_app(inline_text_max_bytes=1024), headers=auth)
    client.post("/api/v1/tts/convert", json={"text": "ä" * 500})  # 1000 bytes
    [job] = jobs_on_queue(resources)
    assert job.text == "ä" * 500
    assert job.text_key is None


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"text": ""}, ["body", "text"]),
        ({"text": " \t\n  "}, ["body", "text"]),
        ({"text": "\u200b\u0000\x07"}, ["body", "text"]),  # control and format characters only
        ({"text": "x" * 100_001}, ["body", "text"]),
        ({"text": TEXT, "custom_filename": "../etc/passwd"}, ["body", "custom_filename"]),
        ({"text": TEXT, "custom_filename": "a/b.wav"}, ["body", "custom_filename"]),
        ({"text": TEXT, "custom_filename": "a\\b.wav"}, ["body", "custom_filename"]),
        ({"text": TEXT, "custom_filename": "bad\nname"}, ["body", "custom_filename"]),
        ({"text": TEXT, "custom_filename": "n" * 256}, ["body", "custom_filename"]),
        ({"text": TEXT, "voice": "x"}, ["body", "voice"]),
        ({"text": 42}, ["body", "text"]),
        ({}, ["body", "text"]),
    ],
)
def test_invalid_submissions_are_422_and_create_nothing(client, resources, payload, loc):
    response = client.post("/api/v1/tts/convert", json=payload)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["loc"] == loc
    assert jobs_on_queue(resources) == []
    assert client.get("/api/v1/tts").json()["items"] == []


def test_text_at_the_limit_after_trimming_is_accepted(client):
    response = client.post("/api/v1/tts/convert", json={"text": "  " + "x" * 100_000 + "  "})
    assert response.status_code == 202


def test_an_unsupported_language_is_422_naming_the_served_ones(client, resources):
    response = client.post("/api/v1/tts/convert", json={"text": TEXT, "language": "sv"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsupported_language"
    assert error["details"] == {"language": "sv", "supported": ["fin"]}
    assert jobs_on_queue(resources) == []


@pytest.mark.parametrize("language", ["fin", "FIN", "fi", "Fi"])
def test_the_served_language_may_be_named_in_any_of_its_forms(client, language):
    default = client.post("/api/v1/tts/convert", json={"text": TEXT}).json()
    named = client.post("/api/v1/tts/convert", json={"text": TEXT, "language": language}).json()
    assert named["conversion_id"] == default["conversion_id"]
    assert client.get(f"/api/v1/tts/{named['conversion_id']}").json()["language"] == "fin"


def test_malformed_json_is_400(client):
    response = client.post(
        "/api/v1/tts/convert", content=b'{"text": "unterminated', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_a_body_that_is_not_json_is_422(client):
    response = client.post("/api/v1/tts/convert", content=b"text=hei", headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


# -- convert-multiple -----------------------------------------------------------------------------------


def test_multiple_texts_make_one_conversion_each_in_order(client, resources):
    texts = ["Yksi", "Kaksi", "Yksi ", "Kolme"]

    response = client.post("/api/v1/tts/convert-multiple", json={"texts": texts})

    assert response.status_code == 202
    items = response.json()["items"]
    assert len(items) == 4
    assert items[0]["conversion_id"] == items[2]["conversion_id"]
    assert [i["deduplicated"] for i in items] == [False, False, True, False]
    assert len({i["conversion_id"] for i in items}) == 3
    jobs = jobs_on_queue(resources)
    assert sorted(j.text for j in jobs) == ["Kaksi", "Kolme", "Yksi"]
    assert {e.task_id for e in events_on_queue(resources)} == {i["conversion_id"] for i in items}


def test_one_bad_text_refuses_the_whole_batch_naming_every_bad_index(client, resources):
    texts = ["Hyvä", " ", "Myös hyvä", "x" * 100_001]

    response = client.post("/api/v1/tts/convert-multiple", json={"texts": texts})

    assert response.status_code == 422
    errors = response.json()["error"]["details"]["errors"]
    assert [e["loc"] for e in errors] == [["body", "texts", 1], ["body", "texts", 3]]
    assert jobs_on_queue(resources) == []
    assert client.get("/api/v1/tts").json()["items"] == []


@pytest.mark.parametrize("texts", [[], ["a", "b", "c"]])
def test_batch_size_is_bounded(make_app, texts, auth):
    client = TestClient(make_app(max_batch_texts=2), headers=auth)
    response = client.post("/api/v1/tts/convert-multiple", json={"texts": texts})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["body", "texts"]


def test_more_than_the_default_hundred_texts_are_refused(client, resources):
    response = client.post("/api/v1/tts/convert-multiple", json={"texts": ["a"] * 101})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["ctx"] == {"max_batch_texts": 100}


def test_normalization_is_what_dedupes(client):
    a = client.post("/api/v1/tts/convert", json={"text": "Hei\u00a0 maailma"}).json()
    b = client.post("/api/v1/tts/convert", json={"text": normalize_text("Hei\u00a0 maailma")}).json()
    assert a["conversion_id"] == b["conversion_id"]


# -- body size ----------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_creates_nothing(make_app, resources, auth):
    # Given
    client = TestClient(make_app(max_request_bytes=2048), headers=auth)
    body = '{"text": "' + "a" * 4096 + '"}'

    # When
    response = client.post("/api/v1/tts/convert", content=body, headers={"content-type": "application/json"})

    # Then
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "the request body is larger than 2048 bytes",
        "details": {"limit_bytes": 2048},
    }
    assert jobs_on_queue(resources) == []


def test_a_chunked_body_over_the_limit_is_413_once_it_passes_the_limit(make_app, resources, auth):
    # Given: no Content-Length, the body streamed in pieces
    client = TestClient(make_app(max_request_bytes=2048), headers=auth)

    def stream():
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 512
        yield b'"}'

    # When
    response = client.post(
        "/api/v1/tts/convert", content=stream(), headers={"content-type": "application/json"}
    )

    # Then
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert jobs_on_queue(resources) == []


def test_a_body_at_the_limit_is_accepted(make_app, auth):
    client = TestClient(make_app(max_request_bytes=2048), headers=auth)
    prefix, suffix = '{"text": "', '"}'
    body = prefix + "a" * (2048 - len(prefix) - len(suffix)) + suffix
    assert len(body.encode()) == 2048

    response = client.post("/api/v1/tts/convert", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 202
