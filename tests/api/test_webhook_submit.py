"""callback_url at submit: checked (400 invalid_callback_url), stored on the task, answered, shown in GET;
a dedupe hit keeps the first submission's."""

from __future__ import annotations

import pytest

TEXT = "Hyvää huomenta, webhooks!"
PUBLIC = "https://93.184.216.34/hooks/tts"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/hook", "address"),
        ("http://169.254.169.254/latest/meta-data/", "address"),
        ("https://[::1]/hook", "address"),
        ("https://[::ffff:192.168.1.1]/hook", "address"),
        ("https://127.0.0.1:9000/hook", "address"),
        ("http://93.184.216.34/hook", "scheme"),
        ("https://user:secret@93.184.216.34/hook", "malformed"),
    ],
)
def test_a_callback_url_the_notifier_would_refuse_is_a_400(client, resources, url, reason):
    from tests.api.support import jobs_on_queue

    response = client.post("/api/v1/tts/convert", json={"text": TEXT, "callback_url": url})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"]["reason"]) == ("invalid_callback_url", reason)
    assert jobs_on_queue(resources) == []  # nothing was created


def test_batch_submit_checks_the_callback_too(client):
    response = client.post(
        "/api/v1/tts/convert-multiple", json={"texts": [TEXT], "callback_url": "https://10.1.1.1/"}
    )
    assert response.status_code == 400


def test_loopback_is_allowed_only_by_the_setting(make_app, auth):
    from fastapi.testclient import TestClient

    local = TestClient(make_app(webhook_allow_loopback=True), headers=auth)
    response = local.post(
        "/api/v1/tts/convert", json={"text": TEXT, "callback_url": "http://127.0.0.1:9/hook"}
    )
    assert response.status_code == 202


def test_the_callback_is_stored_answered_and_shown_and_a_dedupe_hit_keeps_the_first(client):
    # When
    first = client.post("/api/v1/tts/convert", json={"text": TEXT, "callback_url": PUBLIC})
    again = client.post(
        "/api/v1/tts/convert", json={"text": TEXT, "callback_url": "https://93.184.216.35/other"}
    )

    # Then
    assert first.status_code == 202
    assert first.json()["callback_url"] == PUBLIC
    assert again.json()["deduplicated"] is True
    assert again.json()["callback_url"] == PUBLIC  # the first stands; the caller can tell
    conversion = client.get(f"/api/v1/tts/{first.json()['conversion_id']}").json()
    assert conversion["webhook"] == {
        "url": PUBLIC,
        "state": None,
        "event": None,
        "attempts": 0,
        "last_status": None,
        "last_error": None,
        "delivered_at": None,
    }


def test_without_a_callback_the_answer_and_the_conversion_have_none(client):
    accepted = client.post("/api/v1/tts/convert", json={"text": TEXT}).json()
    assert accepted["callback_url"] is None
    assert client.get(f"/api/v1/tts/{accepted['conversion_id']}").json()["webhook"] is None
