"""Keys and tenants through the API on moto: who may call, and what each tenant sees of the others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.api.support import TENANT, create_key, finish_task, key_store

PATHS = [
    ("POST", "/api/v1/tts/convert", {"json": {"text": "Hei"}}),
    ("POST", "/api/v1/tts/convert-multiple", {"json": {"texts": ["Hei"]}}),
    ("GET", "/api/v1/tts", {}),
    ("GET", "/api/v1/tts/stats", {}),
    ("GET", f"/api/v1/tts/{'a' * 32}", {}),
    ("GET", f"/api/v1/tts/{'a' * 32}/download", {}),
]


def _submit(client: TestClient, text: str) -> str:
    response = client.post("/api/v1/tts/convert", json={"text": text})
    assert response.status_code == 202, response.text
    return str(response.json()["conversion_id"])


def _revoked_key(resources) -> str:
    key, record = key_store(resources).create(TENANT, "soon revoked", datetime.now(UTC))
    key_store(resources).revoke(record.key_id, datetime.now(UTC))
    return key


# -- 401 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "options"), PATHS, ids=[f"{m} {p}" for m, p, _ in PATHS])
def test_every_tts_route_refuses_a_request_without_a_key(app, method, path, options):
    response = TestClient(app).request(method, path, **options)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["www-authenticate"] == 'Bearer realm="tts"'


@pytest.mark.parametrize("form", ["x-api-key", "bearer"])
@pytest.mark.parametrize("which", ["unknown", "malformed", "revoked"])
def test_an_unknown_malformed_or_revoked_key_is_401_in_either_header(app, resources, form, which):
    key = {
        "unknown": "tts_" + "Z" * 43,
        "malformed": "not even close",
        "revoked": _revoked_key(resources),
    }[which]
    headers = {"x-api-key": key} if form == "x-api-key" else {"Authorization": f"Bearer {key}"}

    response = TestClient(app).get("/api/v1/tts", headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_api_key", "message": "the API key is not valid (unknown or revoked)"}
    }
    challenge = response.headers["www-authenticate"]
    if form == "bearer":
        assert challenge == 'Bearer realm="tts", error="invalid_token"'
    else:
        assert challenge == 'Bearer realm="tts"'


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "tts_abc"])
def test_an_authorization_header_without_a_bearer_key_is_a_missing_key(app, authorization):
    response = TestClient(app).get("/api/v1/tts", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_both_header_forms_and_any_case_reach_the_same_tenant(app, api_key):
    forms = [
        {"x-api-key": api_key},
        {"X-API-Key": api_key},
        {"Authorization": f"Bearer {api_key}"},
        {"authorization": f"bearer {api_key}"},
    ]
    task_id = _submit(TestClient(app, headers=forms[0]), "Kuka kysyy")

    for headers in forms:
        response = TestClient(app, headers=headers).get(f"/api/v1/tts/{task_id}")
        assert response.status_code == 200, headers


def test_public_routes_need_no_key(app):
    client = TestClient(app)
    for path in ("/", "/health", "/api/v1/voices", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_a_revoked_key_stops_working_at_once(app, resources):
    # Given: a key in use
    key, record = key_store(resources).create("globex", "laptop", datetime.now(UTC))
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    task_id = _submit(client, "Vielä toimii")
    assert client.get(f"/api/v1/tts/{task_id}").status_code == 200

    # When it is revoked
    key_store(resources).revoke(record.key_id, datetime.now(UTC))

    # Then the very next request is refused
    response = client.get(f"/api/v1/tts/{task_id}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_another_key_of_the_same_tenant_sees_the_same_conversions(app, resources, client):
    task_id = _submit(client, "Yhteinen")
    second = TestClient(app, headers={"x-api-key": create_key(resources, TENANT, "ci")})

    assert second.get(f"/api/v1/tts/{task_id}").status_code == 200
    again = second.post("/api/v1/tts/convert", json={"text": "Yhteinen"}).json()
    assert (again["conversion_id"], again["deduplicated"]) == (task_id, True)


# -- isolation ----------------------------------------------------------------------------------------------


@pytest.fixture
def other(app, resources) -> TestClient:
    return TestClient(app, headers={"x-api-key": create_key(resources, "globex")})


@pytest.mark.parametrize("suffix", ["", "/download", "/download?redirect=true"])
def test_another_tenants_id_answers_exactly_as_an_unknown_id(client, other, repository, resources, suffix):
    # Given: a done conversion of acme
    task_id = _submit(client, "Salainen")
    finish_task(repository, resources, task_id)
    unknown = "f" * 32

    # When globex asks for it, and for an id nobody has
    theirs = other.get(f"/api/v1/tts/{task_id}{suffix}", follow_redirects=False)
    nobodys = other.get(f"/api/v1/tts/{unknown}{suffix}", follow_redirects=False)

    # Then both answers are the same but for the id they echo
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.text.replace(task_id, unknown) == nobodys.text
    assert {k: v for k, v in theirs.headers.items() if k != "content-length"} == {
        k: v for k, v in nobodys.headers.items() if k != "content-length"
    }
    # ...while acme itself gets its audio
    assert client.get(f"/api/v1/tts/{task_id}/download").status_code == 200


def test_lists_and_stats_hold_only_the_callers_conversions(client, other):
    mine = {_submit(client, f"Oma {i}") for i in range(3)}
    theirs = {_submit(other, "Toisen")}

    assert {i["conversion_id"] for i in client.get("/api/v1/tts").json()["items"]} == mine
    assert {i["conversion_id"] for i in other.get("/api/v1/tts").json()["items"]} == theirs
    for status in ("queued", "done"):
        listed = other.get("/api/v1/tts", params={"status": status}).json()["items"]
        assert {i["conversion_id"] for i in listed} <= theirs
    assert client.get("/api/v1/tts/stats").json()["submitted"] == 3
    assert other.get("/api/v1/tts/stats").json()["submitted"] == 1
    assert other.get("/api/v1/tts/stats").json()["counts"]["queued"] == 1


def test_the_same_text_from_two_tenants_is_two_conversions_and_two_jobs(client, other, resources):
    from tests.api.support import jobs_on_queue

    a = client.post("/api/v1/tts/convert", json={"text": "Sama lause"}).json()
    b = other.post("/api/v1/tts/convert", json={"text": "Sama lause"}).json()

    assert a["conversion_id"] != b["conversion_id"]
    assert (a["deduplicated"], b["deduplicated"]) == (False, False)
    assert sorted(job.task_id for job in jobs_on_queue(resources)) == sorted(
        [a["conversion_id"], b["conversion_id"]]
    )
    assert (
        client.get(f"/api/v1/tts/{a['conversion_id']}").json()["text_hash"]
        != (other.get(f"/api/v1/tts/{b['conversion_id']}").json()["text_hash"])
    )


@pytest.mark.parametrize("status", [None, "queued"])
def test_a_page_token_of_another_tenant_is_400(client, other, status):
    for i in range(3):
        _submit(client, f"Sivu {i}")
    params = {"limit": 1, **({"status": status} if status else {})}
    token = client.get("/api/v1/tts", params=params).json()["next_token"]
    assert token

    response = other.get("/api/v1/tts", params={**params, "next_token": token})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_page_token"
    assert client.get("/api/v1/tts", params={**params, "next_token": token}).status_code == 200
