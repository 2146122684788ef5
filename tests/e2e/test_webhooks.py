"""Signed webhooks end to end on the local stack (`python -m local.stack`, loopback callbacks allowed for
these tests only): a receiver verifies the signature with the README's snippet; a receiver that is down at
first gets the notification once it comes up; private addresses are refused at submit."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.common.test_webhooks import readme_verifier
from tests.e2e.conftest import LocalStack, free_port, run_local_stack

pytestmark = pytest.mark.e2e

EXTRA_ENV = {
    "WEBHOOK_ALLOW_LOOPBACK": "true",
    # Retries after about 1, 3, 6, 12 s instead of 10, 30, 60, 120 s.
    "WEBHOOK_BACKOFF_SCALE": "0.1",
    "WEBHOOK_RETRY_WINDOW_S": "300",
}


class Receiver:
    """An http.server on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tts"

    def wait(self, *, count: int = 1, timeout_s: float) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"no notification within {timeout_s} s"
            time.sleep(0.2)
        return self.received


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_local_stack(tmp_path_factory.mktemp("webhooks"), extra_env=EXTRA_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def secret(stack: LocalStack) -> str:
    """The development tenant's webhook secret, made as a user would: `tts-admin webhooks secret`."""
    from tts_common import admin

    out = io.StringIO()
    code = admin.main(
        ["--local", "--endpoint-url", stack.moto_url, "webhooks", "secret", "--tenant", "local", "--json"],
        out=out,
    )
    assert code == 0
    return str(json.loads(out.getvalue())["webhook_secret"])


def _submit(stack: LocalStack, text: str, callback_url: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/api/v1/tts/convert",
        json={"text": text, "callback_url": callback_url},
        headers={"x-api-key": stack.key},
        timeout=30,
    )


def _conversion(stack: LocalStack, conversion_id: str) -> dict:
    response = httpx.get(
        f"{stack.url}/api/v1/tts/{conversion_id}", headers={"x-api-key": stack.key}, timeout=30
    )
    return dict(response.json())


def test_a_receiver_verifies_the_signed_notification(stack: LocalStack, secret: str) -> None:
    receiver = Receiver().start()
    try:
        accepted = _submit(stack, "Hyvää huomenta, vastaanottaja!", receiver.url)
        assert accepted.status_code == 202, accepted.text
        conversion_id = accepted.json()["conversion_id"]

        [(headers, body)] = receiver.wait(timeout_s=120)

        assert readme_verifier()(body, headers["X-TTS-Signature"], secret)
        assert not readme_verifier()(body, headers["X-TTS-Signature"], "whsec_wrong")
        payload = json.loads(body)
        assert payload["id"] == headers["X-TTS-Event-Id"] == f"evt_{conversion_id}_done"
        assert payload["data"]["status"] == "done"
        audio = httpx.get(payload["data"]["download"]["url"], timeout=30)
        assert audio.status_code == 200
        assert audio.content[:4] == b"RIFF"
        deadline = time.monotonic() + 30
        while (webhook := _conversion(stack, conversion_id)["webhook"])["state"] != "delivered":
            assert time.monotonic() < deadline, webhook
            time.sleep(0.3)
        assert (webhook["url"], webhook["attempts"], webhook["last_status"]) == (receiver.url, 1, 200)
    finally:
        receiver.stop()


def test_a_receiver_down_at_first_gets_the_notification_when_it_comes_back(
    stack: LocalStack, secret: str
) -> None:
    # Given: nothing listens on the callback's port yet
    receiver = Receiver()
    accepted = _submit(stack, "Vastaanottaja herää vasta myöhemmin.", receiver.url)
    assert accepted.status_code == 202, accepted.text
    conversion_id = accepted.json()["conversion_id"]

    # When: the first attempt has failed (recorded on the conversion), the receiver comes up
    deadline = time.monotonic() + 120
    while (webhook := _conversion(stack, conversion_id)["webhook"])["attempts"] < 1:
        assert time.monotonic() < deadline, webhook
        time.sleep(0.3)
    assert webhook["state"] == "pending"
    assert webhook["last_status"] is None
    assert "Connection" in webhook["last_error"]
    receiver.start()
    try:
        # Then: a retry delivers it, signed, and says which attempt it is
        [(headers, body)] = receiver.wait(timeout_s=60)
        assert readme_verifier()(body, headers["X-TTS-Signature"], secret)
        assert int(headers["X-TTS-Delivery-Attempt"]) >= 2
        assert json.loads(body)["data"]["conversion_id"] == conversion_id
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:10.0.0.1]/hook",
        "http://93.184.216.34/hook",  # http to a public host: https only, even here
    ],
)
def test_private_addresses_are_refused_at_submit(stack: LocalStack, url: str) -> None:
    response = _submit(stack, f"Ei minnekään: {url}", url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_callback_url"
