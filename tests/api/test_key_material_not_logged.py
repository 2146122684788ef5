"""Key material never appears in logs: every log record and everything written to stdout and stderr while a
key is created, resolved, used, refused and revoked is grepped for the key (DEBUG everywhere, botocore's
wire logging included)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.api.support import finish_task, key_store
from tts_common import admin


def test_no_log_line_holds_a_key(app, resources, repository, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: botocore, PynamoDB, the service's own loggers
    store = key_store(resources)

    # Given: keys created by tts-admin's code path and by the store
    key, record = admin.create_key(
        admin.Target(store, None, "moto"), tenant_id="acme", name="laptop", now=datetime.now(UTC)
    )
    revoked, revoked_record = store.create("acme", "old", datetime.now(UTC))
    store.revoke(revoked_record.key_id, datetime.now(UTC))
    wrong = key[:-4] + "AAAA"

    # When: it is used in both header forms, refused in both forms, and its tasks are read and downloaded
    for headers in ({"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        client = TestClient(app, headers=headers, raise_server_exceptions=False)
        task_id = client.post("/api/v1/tts/convert", json={"text": f"Loki {len(headers)}"}).json()[
            "conversion_id"
        ]
        finish_task(repository, resources, task_id)
        assert client.get(f"/api/v1/tts/{task_id}").status_code == 200
        assert client.get(f"/api/v1/tts/{task_id}/download").status_code == 200
        assert client.get("/api/v1/tts", params={"next_token": "garbage"}).status_code == 400
    for bad in (wrong, revoked):
        for headers in ({"x-api-key": bad}, {"Authorization": f"Bearer {bad}"}):
            assert TestClient(app, headers=headers).get("/api/v1/tts").status_code == 401
    store.resolve(key)
    store.revoke(record.key_id, datetime.now(UTC))
    assert TestClient(app, headers={"x-api-key": key}).get("/api/v1/tts/stats").status_code == 401

    # Then: not one log record, nor a byte of the process's own output, holds any of the keys
    captured = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for secret in (key, revoked, wrong):
        assert secret not in logged
        assert secret not in captured.out
        assert secret not in captured.err
