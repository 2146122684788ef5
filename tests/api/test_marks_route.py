"""GET /api/v1/tts/{id}/marks on moto: 404 for unknown and other tenants' ids, 409 before done, 404 for a done
conversion without that format, 200 with a presigned URL (and 307 with redirect=true)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from fastapi.testclient import TestClient

from tests.api.support import aws_client, create_key, fail_task
from tts_common.domain import MarksFormat, TaskStatus, audio_key_for, marks_key_for
from tts_common.messages import AudioInfo, LifecycleEvent
from tts_common.voice import AudioFormat

VTT = b"WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.250\nHei maailma.\n"


def _submit(client, text: str, **extra) -> str:
    response = client.post("/api/v1/tts/convert", json={"text": text, **extra})
    assert response.status_code == 202
    return response.json()["conversion_id"]


def _finish_with_marks(repository, resources, task_id: str, marks: tuple[MarksFormat, ...]) -> None:
    """The worker's part: the marks and the audio in the bucket, then a `done` event naming the marks."""
    s3 = aws_client("s3")
    for marks_format in marks:
        body = VTT if marks_format is not MarksFormat.JSON else b'{"time":0,"type":"word"}\n'
        s3.put_object(Bucket=resources.bucket_name, Key=marks_key_for(task_id, marks_format), Body=body)
    key = audio_key_for(task_id, AudioFormat.WAV)
    s3.put_object(Bucket=resources.bucket_name, Key=key, Body=b"RIFF")
    info = AudioInfo(
        audio_key=key,
        file_size=4,
        format=AudioFormat.WAV,
        sampling_rate=16_000,
        duration_s=1.25,
        device="cpu",
        marks=marks,
    )
    now = datetime.now(UTC)
    repository.apply_events(
        task_id,
        [
            LifecycleEvent(task_id=task_id, status=TaskStatus.PROCESSING, at=now - timedelta(seconds=1)),
            LifecycleEvent(task_id=task_id, status=TaskStatus.DONE, at=now, audio=info),
        ],
    )


def test_marks_of_an_unknown_id_are_404(client):
    response = client.get(f"/api/v1/tts/{'f' * 32}/marks")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


def test_marks_before_done_are_409_with_the_status(client):
    task_id = _submit(client, "Vielä jonossa")

    response = client.get(f"/api/v1/tts/{task_id}/marks", params={"format": "vtt"})

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"conversion_id": task_id, "status": "queued"}


def test_marks_of_a_failed_conversion_are_409(client, repository):
    task_id = _submit(client, "Epäonni")
    fail_task(repository, task_id)

    assert client.get(f"/api/v1/tts/{task_id}/marks").status_code == 409


@pytest.mark.parametrize("marks_format", list(MarksFormat))
def test_a_done_conversion_links_each_marks_format(client, repository, resources, marks_format):
    task_id = _submit(client, "Hei maailma.", custom_filename="tervehdys.wav")
    _finish_with_marks(repository, resources, task_id, tuple(MarksFormat))

    response = client.get(f"/api/v1/tts/{task_id}/marks", params={"format": str(marks_format)})

    assert response.status_code == 200
    body = response.json()
    extension = {"json": "marks.jsonl", "vtt": "vtt", "srt": "srt", "words.vtt": "words.vtt"}[
        str(marks_format)
    ]
    assert body["filename"] == f"tervehdys.{extension}"
    fetched = requests.get(body["url"], timeout=10)  # in-process moto intercepts requests, not httpx
    assert fetched.status_code == 200
    assert fetched.content.startswith(b"{" if marks_format is MarksFormat.JSON else b"WEBVTT")
    conversion = client.get(f"/api/v1/tts/{task_id}").json()
    assert conversion["marks"] == ["json", "vtt", "srt", "words.vtt"]


def test_the_default_format_is_polly_json_lines_and_redirect_answers_307(client, repository, resources):
    task_id = _submit(client, "Hei taas.")
    _finish_with_marks(repository, resources, task_id, (MarksFormat.JSON,))

    response = client.get(f"/api/v1/tts/{task_id}/marks", params={"redirect": "true"}, follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["Cache-Control"] == "no-store"
    assert marks_key_for(task_id, MarksFormat.JSON).split("/")[-1] in response.headers["Location"]


def test_a_format_the_conversion_lacks_is_404_and_an_unknown_format_422(client, repository, resources):
    task_id = _submit(client, "Vain sanat.")
    _finish_with_marks(repository, resources, task_id, (MarksFormat.JSON,))

    missing = client.get(f"/api/v1/tts/{task_id}/marks", params={"format": "srt"})
    unknown = client.get(f"/api/v1/tts/{task_id}/marks", params={"format": "ass"})

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "marks_not_available"
    assert missing.json()["error"]["details"] == {"conversion_id": task_id, "format": "srt"}
    assert unknown.status_code == 422


def test_another_tenants_marks_answer_as_an_unknown_id(client, app, repository, resources):
    task_id = _submit(client, "Salaisuus.")
    _finish_with_marks(repository, resources, task_id, tuple(MarksFormat))
    other = TestClient(app, headers={"x-api-key": create_key(resources, "globex")})

    response = other.get(f"/api/v1/tts/{task_id}/marks")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


def test_the_marks_route_is_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/tts/{conversion_id}/marks"]["get"]

    assert {"200", "307", "401", "404", "409", "422", "503"} <= set(operation["responses"])
    [fmt] = [p for p in operation["parameters"] if p["name"] == "format"]
    assert fmt["in"] == "query"
