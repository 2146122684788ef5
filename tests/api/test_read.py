"""Reading conversions back on moto: one, a page of them, the stats, and the audio download."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

import pytest
import requests

from tests.api.support import fail_task, finish_task

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(range(256))


def _submit(client, text: str, **extra) -> str:
    response = client.post("/api/v1/tts/convert", json={"text": text, **extra})
    assert response.status_code == 202
    return response.json()["conversion_id"]


# -- one conversion ------------------------------------------------------------------------------------


def test_a_new_conversion_reads_back_queued(client, api_settings):
    task_id = _submit(client, "Hei maailma", custom_filename="hei")

    response = client.get(f"/api/v1/tts/{task_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["conversion_id"] == task_id
    assert body["status"] == "queued"
    assert len(body["text_hash"]) == 64
    assert body["custom_filename"] == "hei"
    assert body["progress"] is None
    assert body["attempts"] == 0
    for name in ("started_at", "completed_at", "failed_at", "error", "file_size", "sampling_rate", "device"):
        assert body[name] is None
    datetime.fromisoformat(body["submitted_at"])


def test_a_done_conversion_carries_its_audio_facts(client, repository, resources):
    task_id = _submit(client, "Valmis")
    finish_task(repository, resources, task_id, audio=AUDIO)

    body = client.get(f"/api/v1/tts/{task_id}").json()

    assert body["status"] == "done"
    assert body["file_size"] == len(AUDIO)
    assert body["sampling_rate"] == 16_000
    assert body["duration_s"] == 1.25
    assert body["device"] == "cpu"
    assert body["started_at"] is not None
    assert body["completed_at"] is not None


def test_a_failed_conversion_carries_its_error(client, repository):
    task_id = _submit(client, "Epäonni")
    fail_task(repository, task_id)

    body = client.get(f"/api/v1/tts/{task_id}").json()

    assert body["status"] == "failed"
    assert body["error"] == {"code": "empty_tokenization", "message": "nothing to say"}
    assert body["attempts"] == 3


@pytest.mark.parametrize("task_id", ["0" * 32, "not-an-id", "A" * 32, "0" * 31, "0" * 33, "%2e%2e", "g" * 32])
def test_unknown_or_malformed_ids_are_404(client, task_id):
    response = client.get(f"/api/v1/tts/{task_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


# -- listing -------------------------------------------------------------------------------------------


def test_pages_walk_every_task_newest_first_without_repeats(client):
    # Given: 25 tasks, one second apart
    submitted = [_submit(client, f"Lause {i}") for i in range(25)]

    # When
    pages, token = [], None
    while True:
        params = {"limit": 10, **({"next_token": token} if token else {})}
        body = client.get("/api/v1/tts", params=params).json()
        pages.append([item["conversion_id"] for item in body["items"]])
        token = body["next_token"]
        if token is None:
            break

    # Then
    assert [len(p) for p in pages] == [10, 10, 5]
    listed = [task_id for page in pages for task_id in page]
    assert listed == list(reversed(submitted))


def test_the_default_page_is_twenty(client):
    for i in range(21):
        _submit(client, f"Lause {i}")
    body = client.get("/api/v1/tts").json()
    assert len(body["items"]) == 20
    assert body["next_token"] is not None


def test_the_status_filter_lists_only_that_status(client, repository, resources):
    ids = [_submit(client, f"Lause {i}") for i in range(5)]
    for task_id in ids[1:3]:
        finish_task(repository, resources, task_id)

    done = client.get("/api/v1/tts", params={"status": "done"}).json()
    queued = client.get("/api/v1/tts", params={"status": "queued"}).json()

    assert [i["conversion_id"] for i in done["items"]] == [ids[2], ids[1]]
    assert [i["conversion_id"] for i in queued["items"]] == [ids[4], ids[3], ids[0]]
    assert {i["status"] for i in done["items"]} == {"done"}


@pytest.mark.parametrize("token", ["garbage", "eyJrIjp7fX0", "%%%", "e30"])
def test_a_token_this_api_did_not_issue_is_400(client, token):
    response = client.get("/api/v1/tts", params={"next_token": token})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_page_token"


def test_a_token_is_bound_to_its_filter(client):
    for i in range(3):
        _submit(client, f"Lause {i}")
    token = client.get("/api/v1/tts", params={"limit": 1}).json()["next_token"]

    response = client.get("/api/v1/tts", params={"limit": 1, "status": "queued", "next_token": token})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_page_token"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"status": "lost"}])
def test_bad_list_parameters_are_422(client, params):
    response = client.get("/api/v1/tts", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


# -- stats ---------------------------------------------------------------------------------------------


def test_stats_count_statuses_submissions_and_dedupe_hits(client, repository, resources):
    ids = [_submit(client, f"Lause {i}") for i in range(3)]
    _submit(client, "Lause 0")
    finish_task(repository, resources, ids[0])
    fail_task(repository, ids[1])

    body = client.get("/api/v1/tts/stats").json()

    assert body["counts"] == {"queued": 1, "processing": 0, "completed": 0, "done": 1, "failed": 1}
    assert body["submitted"] == 3
    assert body["dedupe_hits"] == 1
    assert body["average_processing_s"] == pytest.approx(2.0, abs=0.01)


# -- download ------------------------------------------------------------------------------------------


def test_download_before_done_is_409_with_the_status(client):
    task_id = _submit(client, "Vielä jonossa")

    response = client.get(f"/api/v1/tts/{task_id}/download")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "task_not_ready"
    assert error["details"] == {"conversion_id": task_id, "status": "queued"}


def test_download_of_a_failed_conversion_is_409_with_the_reason(client, repository):
    task_id = _submit(client, "Epäonni")
    fail_task(repository, task_id)

    response = client.get(f"/api/v1/tts/{task_id}/download")

    assert response.status_code == 409
    details = response.json()["error"]["details"]
    assert details["status"] == "failed"
    assert details["error"] == {"code": "empty_tokenization", "message": "nothing to say"}


def test_download_of_an_unknown_id_is_404(client):
    assert client.get(f"/api/v1/tts/{'f' * 32}/download").status_code == 404
    assert client.get("/api/v1/tts/nope/download").status_code == 404


def test_a_done_conversion_downloads_through_a_presigned_url(client, repository, resources):
    task_id = _submit(client, "Kuuntele", custom_filename="kuuntele tätä")
    finish_task(repository, resources, task_id, audio=AUDIO)

    response = client.get(f"/api/v1/tts/{task_id}/download")

    assert response.status_code == 200
    body = response.json()
    assert body["filename"] == "kuuntele tätä.wav"
    datetime.fromisoformat(body["expires_at"])
    fetched = requests.get(body["url"], timeout=10)  # in-process moto intercepts requests, not httpx
    assert fetched.status_code == 200
    assert fetched.content == AUDIO
    disposition = fetched.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "kuuntele tätä.wav"


def test_the_default_filename_is_the_conversion_id(client, repository, resources):
    task_id = _submit(client, "Nimetön")
    finish_task(repository, resources, task_id)

    assert client.get(f"/api/v1/tts/{task_id}/download").json()["filename"] == f"tts-{task_id}.wav"


def test_a_download_may_ask_for_another_filename(client, repository, resources):
    task_id = _submit(client, "Toinen nimi", custom_filename="eka.wav")
    finish_task(repository, resources, task_id, audio=AUDIO)

    body = client.get(f"/api/v1/tts/{task_id}/download", params={"filename": "toka"}).json()

    assert body["filename"] == "toka.wav"
    fetched = requests.get(body["url"], timeout=10)
    assert 'filename="toka.wav"' in fetched.headers["Content-Disposition"]


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "..", "x\ny", "n" * 256])
def test_a_path_like_download_filename_is_422(client, repository, resources, name):
    task_id = _submit(client, "Polku")
    finish_task(repository, resources, task_id)

    response = client.get(f"/api/v1/tts/{task_id}/download", params={"filename": name})

    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["query", "filename"]


def test_redirect_answers_307_to_the_presigned_url(client, repository, resources):
    task_id = _submit(client, "Ohjaa", custom_filename="ohjaus")
    finish_task(repository, resources, task_id, audio=AUDIO)

    response = client.get(
        f"/api/v1/tts/{task_id}/download", params={"redirect": "true"}, follow_redirects=False
    )

    assert response.status_code == 307
    location = response.headers["location"]
    assert f"audio/{task_id}.wav" in location
    assert response.headers["cache-control"] == "no-store"
    fetched = requests.get(location, timeout=10)
    assert fetched.content == AUDIO
    assert 'filename="ohjaus.wav"' in fetched.headers["Content-Disposition"]
