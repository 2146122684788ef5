"""A request's voice over HTTP on moto: language, speed, format and sample rate, from submit to download;
and GET /api/v1/voices."""

from __future__ import annotations

import pytest
import requests
from fastapi.testclient import TestClient

from tests.api.support import TENANT, finish_task, jobs_on_queue
from tts_common.voice import AudioFormat, dedupe_key

TEXT = "Habari za asubuhi"
SERVED = {
    "tts_languages": ("fin", "eng", "swh"),
    "tts_model_overrides": (("swh", "/opt/models/swh"),),
}


@pytest.fixture
def three(make_app, auth) -> TestClient:
    """The API of a deployment that serves Finnish, English and Swahili."""
    return TestClient(make_app(**SERVED), headers=auth)


def _submit(client: TestClient, **fields) -> dict:
    response = client.post("/api/v1/tts/convert", json={"text": TEXT, **fields})
    assert response.status_code == 202, response.json()
    return response.json()


@pytest.mark.parametrize(
    ("language", "code", "model"),
    [
        ("fin", "fin", "facebook/mms-tts-fin"),
        ("en", "eng", "facebook/mms-tts-eng"),
        ("ENG", "eng", "facebook/mms-tts-eng"),
        ("swh", "swh", "/opt/models/swh"),
    ],
)
def test_each_served_language_goes_to_its_model(three, resources, language, code, model):
    accepted = _submit(three, language=language)

    [job] = jobs_on_queue(resources)
    assert (job.voice.language, job.voice.model_id) == (code, model)
    assert three.get(f"/api/v1/tts/{accepted['conversion_id']}").json()["language"] == code


@pytest.mark.parametrize("language", ["yor", "sw", "sv", "xx"])
def test_an_unserved_language_is_422_at_submit_naming_the_served_ones(three, resources, language):
    response = three.post("/api/v1/tts/convert-multiple", json={"texts": [TEXT], "language": language})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsupported_language"
    assert error["details"] == {"language": language, "supported": ["fin", "eng", "swh"]}
    assert jobs_on_queue(resources) == []
    assert three.get("/api/v1/tts").json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"format": "ogg_opus", "sample_rate": 22050}, ["body", "sample_rate"]),
        ({"format": "ogg_opus", "sample_rate": 44100}, ["body", "sample_rate"]),
        ({"sample_rate": 11025}, ["body", "sample_rate"]),
        ({"format": "m4a"}, ["body", "format"]),
        ({"speed": 0.1}, ["body", "speed"]),
        ({"speed": 4.5}, ["body", "speed"]),
    ],
)
def test_a_voice_the_service_cannot_deliver_is_422(client, resources, fields, loc):
    response = client.post("/api/v1/tts/convert", json={"text": TEXT, **fields})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["loc"] == loc
    assert jobs_on_queue(resources) == []


def test_a_conversion_shows_its_voice(client, resources):
    accepted = _submit(client, speed=1.5, format="ogg_opus", sample_rate=48000)

    body = client.get(f"/api/v1/tts/{accepted['conversion_id']}").json()

    assert (body["language"], body["speed"], body["format"], body["sample_rate"]) == (
        "fin",
        1.5,
        "ogg_opus",
        48000,
    )
    [listed] = client.get("/api/v1/tts").json()["items"]
    assert (listed["format"], listed["sample_rate"], listed["speed"]) == ("ogg_opus", 48000, 1.5)


def test_without_a_rate_the_conversion_shows_none_asked(client):
    accepted = _submit(client)
    body = client.get(f"/api/v1/tts/{accepted['conversion_id']}").json()
    assert (body["format"], body["sample_rate"], body["speed"]) == ("wav", None, 1.0)


def test_the_dedupe_key_is_the_text_and_the_voice_only(client, resources):
    # Given: one text in two formats, and once more with another filename
    wav = _submit(client, custom_filename="a")
    mp3 = _submit(client, format="mp3", custom_filename="b")
    again = _submit(client, format="mp3", custom_filename="c")

    # Then: two conversions; the filename does not split one
    assert wav["conversion_id"] != mp3["conversion_id"]
    assert again["conversion_id"] == mp3["conversion_id"]
    assert again["deduplicated"] is True
    jobs = {j.task_id: j for j in jobs_on_queue(resources)}
    assert set(jobs) == {wav["conversion_id"], mp3["conversion_id"]}
    for job in jobs.values():
        assert job.dedupe_key == dedupe_key(TEXT, job.voice, tenant_id=TENANT)


@pytest.mark.parametrize(
    ("audio_format", "extension", "content_type"),
    [
        ("wav", "wav", "audio/wav"),
        ("flac", "flac", "audio/flac"),
        ("ogg_opus", "opus", "audio/ogg"),
        ("ogg_vorbis", "ogg", "audio/ogg"),
        ("mp3", "mp3", "audio/mpeg"),
        ("pcm", "pcm", "audio/pcm"),
    ],
)
def test_the_key_filename_and_content_type_follow_the_format(
    client, repository, resources, audio_format, extension, content_type
):
    # Given: a done conversion in this format, named as a WAV by its submitter
    accepted = _submit(client, format=audio_format, custom_filename="tervehdys.wav")
    task_id = accepted["conversion_id"]
    [job] = jobs_on_queue(resources)
    assert job.audio_key == f"audio/{task_id}.{extension}"
    finish_task(repository, resources, task_id, audio=b"not really audio")

    # When
    body = client.get(f"/api/v1/tts/{task_id}/download").json()

    # Then: the name takes the format's extension, and the URL serves the format's content type
    assert body["filename"] == f"tervehdys.{extension}"
    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == content_type
    assert f'filename="tervehdys.{extension}"' in fetched.headers["Content-Disposition"]
    assert client.get(f"/api/v1/tts/{task_id}").json()["format"] == audio_format


def test_the_voices_this_deployment_serves(three):
    response = three.get("/api/v1/voices")

    assert response.status_code == 200
    body = response.json()
    assert body["languages"] == [
        {
            "code": "fin",
            "name": "Finnish",
            "model_id": "facebook/mms-tts-fin",
            "native_sample_rate": None,
            "romanized": None,
        },
        {
            "code": "eng",
            "name": "English",
            "model_id": "facebook/mms-tts-eng",
            "native_sample_rate": None,
            "romanized": None,
        },
        {
            "code": "swh",
            "name": "Swahili (individual language)",
            "model_id": "/opt/models/swh",
            "native_sample_rate": None,
            "romanized": None,
        },
    ]
    assert (body["default_language"], body["default_format"], body["default_speed"]) == ("fin", "wav", 1.0)
    assert (body["speed_min"], body["speed_max"]) == (0.25, 4.0)
    assert body["sample_rates"] == [8000, 16000, 22050, 24000, 44100, 48000]
    formats = {f["format"]: f for f in body["formats"]}
    assert list(formats) == [f.value for f in AudioFormat]
    assert formats["ogg_opus"] == {
        "format": "ogg_opus",
        "extension": "opus",
        "content_type": "audio/ogg",
        "sample_rates": [8000, 16000, 24000, 48000],
    }
    assert formats["mp3"]["sample_rates"] == body["sample_rates"]


def test_every_voice_listed_is_accepted_at_submit(three, resources):
    voices = three.get("/api/v1/voices").json()
    for language in voices["languages"]:
        for audio_format in voices["formats"]:
            for rate in audio_format["sample_rates"][:1] + audio_format["sample_rates"][-1:]:
                response = three.post(
                    "/api/v1/tts/convert",
                    json={
                        "text": TEXT,
                        "language": language["code"],
                        "format": audio_format["format"],
                        "sample_rate": rate,
                    },
                )
                assert response.status_code == 202, response.json()
