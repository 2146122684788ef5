"""End to end: start the local stack as `make run` does, then talk to it over HTTP only."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from tests.e2e.conftest import LocalStack, run_local_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# About 200 characters of Finnish.
FINNISH_200 = (
    "Suomen kesä on lyhyt mutta valoisa. Kesäkuussa aurinko laskee vasta myöhään illalla, ja moni "
    "viettää aikaa mökillä järven rannalla. Saunan jälkeen uidaan, ja illalla grillataan makkaraa."
)


# The stack's development key (LOCAL_API_KEY: `make run` takes it instead of drawing one).
API_KEY = "tts_e2e" + "K" * 40
AUTH = {"x-api-key": API_KEY}
PYTHONPATH = os.pathsep.join(
    ["layers/common", "functions/api", "functions/worker", "functions/task_events", "."]
)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_local_stack(tmp_path_factory.mktemp("stack"), key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def stack(local: LocalStack) -> str:
    """The API's base URL."""
    return local.url


def _submit(client: httpx.Client, text: str, **extra: object) -> httpx.Response:
    return client.post("/api/v1/tts/convert", json={"text": text, **extra})


def _wait_done(client: httpx.Client, conversion_id: str, *, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/v1/tts/{conversion_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, f"not done within {timeout_s} s: {body}"
        time.sleep(0.25)


def test_submit_poll_download_a_valid_wav(stack: str) -> None:
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        assert client.get("/health").json()["checks"] == {"table": True, "bucket": True, "queue": True}
        started = time.monotonic()
        submitted = _submit(client, FINNISH_200, custom_filename="kesä")
        assert submitted.status_code == 202, submitted.text
        conversion_id = submitted.json()["conversion_id"]
        task = _wait_done(client, conversion_id, timeout_s=30)
        assert task["status"] == "done", task
        assert time.monotonic() - started < 30
        assert task["sampling_rate"] == 16000
        assert task["file_size"] > 44

        download = client.get(f"/api/v1/tts/{conversion_id}/download")
        assert download.status_code == 200, download.text
        link = download.json()
        assert link["filename"] == "kesä.wav"
        audio = httpx.get(link["url"], timeout=30)  # the presigned URL, straight from the bucket
        assert audio.status_code == 200
        assert "kes%C3%A4.wav" in audio.headers["content-disposition"]
        data, rate = sf.read(io.BytesIO(audio.content), dtype="int16")
        info = sf.info(io.BytesIO(audio.content))
        assert rate == 16000
        assert info.subtype == "PCM_16"
        assert len(data) > 0
        assert len(audio.content) == task["file_size"]

        redirect = client.get(f"/api/v1/tts/{conversion_id}/download", params={"redirect": "true"})
        assert redirect.status_code == 307
        assert redirect.headers["location"].startswith("http://127.0.0.1:")


def test_a_done_conversion_has_speech_marks_and_subtitles_that_parse(stack: str) -> None:
    import srt
    import webvtt

    text = "Hyvää huomenta, maailma! Tämä on toinen lause."
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        conversion_id = _submit(client, text).json()["conversion_id"]
        task = _wait_done(client, conversion_id, timeout_s=30)
        assert task["status"] == "done", task
        assert task["marks"] == ["json", "vtt", "srt", "words.vtt"]
        fetched = {}
        for marks_format in task["marks"]:
            link = client.get(f"/api/v1/tts/{conversion_id}/marks", params={"format": marks_format})
            assert link.status_code == 200, link.text
            fetched[marks_format] = httpx.get(link.json()["url"], timeout=30).content.decode("utf-8")

    duration_ms, frame_ms = task["duration_s"] * 1000, 256 / 16  # one 256-sample frame at 16 kHz
    marks = [json.loads(line) for line in fetched["json"].splitlines()]
    assert [(m["type"], m["value"]) for m in marks if m["type"] == "sentence"] == [
        ("sentence", "Hyvää huomenta, maailma!"),
        ("sentence", "Tämä on toinen lause."),
    ]
    assert [m["value"] for m in marks if m["type"] == "word"] == [
        "Hyvää",
        "huomenta",
        "maailma",
        "Tämä",
        "on",
        "toinen",
        "lause",
    ]
    assert all(text.encode()[m["start"] : m["end"]].decode() == m["value"] for m in marks)
    times = [m["time"] for m in marks]
    assert times == sorted(times)
    captions = webvtt.from_buffer(io.StringIO(fetched["vtt"])).captions
    subtitles = list(srt.parse(fetched["srt"]))
    assert (
        [c.text for c in captions]
        == [s.content for s in subtitles]
        == [
            "Hyvää huomenta, maailma!",
            "Tämä on toinen lause.",
        ]
    )
    assert abs(subtitles[-1].end.total_seconds() * 1000 - duration_ms) <= frame_ms
    assert abs(captions[-1].end_time.in_milliseconds() - duration_ms) <= frame_ms
    assert len(webvtt.from_buffer(io.StringIO(fetched["words.vtt"])).captions) == 7


def test_same_text_same_id_also_from_32_concurrent_submissions(stack: str) -> None:
    with httpx.Client(headers=AUTH, base_url=stack, timeout=60) as client:
        first = _submit(client, FINNISH_200).json()
        again = _submit(client, "  " + FINNISH_200.replace(" ", "  ") + "\n").json()
        assert again["conversion_id"] == first["conversion_id"]
        assert again["deduplicated"] is True

        text = "Kolmekymmentäkaksi samaa pyyntöä yhtä aikaa."
        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(lambda _: _submit(client, text), range(32)))
        assert {r.status_code for r in responses} == {202}
        ids = {r.json()["conversion_id"] for r in responses}
        assert len(ids) == 1
        assert sum(not r.json()["deduplicated"] for r in responses) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"text": ""},
        {"text": "   \n\t  "},
        {"text": "a" * 100_001},
        {"text": "hei", "custom_filename": "../etc/passwd"},
        {"text": "hei", "custom_filename": "a/b"},
        {"text": "hei", "custom_filename": "a\\b"},
    ],
)
def test_bad_input_is_422_with_a_typed_body(stack: str, payload: dict) -> None:
    response = httpx.post(f"{stack}/api/v1/tts/convert", json=payload, headers=AUTH, timeout=30)
    assert response.status_code == 422
    assert set(response.json()["error"]) >= {"code", "message"}


def test_unknown_id_is_404_and_early_download_is_409(stack: str) -> None:
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        missing = client.get(f"/api/v1/tts/{'0' * 32}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "task_not_found"
        texts = [f"Lause numero {i} odottaa vuoroaan jonossa." for i in range(20)]
        # The last text is long enough (~40,000 characters) that two workers cannot finish it before it is
        # asked for first below: the 409 does not hang on how fast the stack is.
        texts.append(" ".join(f"Pitkä lause numero {i} odottaa vuoroaan jonossa." for i in range(800)))
        items = client.post("/api/v1/tts/convert-multiple", json={"texts": texts}).json()["items"]
        early = [client.get(f"/api/v1/tts/{item['conversion_id']}/download") for item in reversed(items)]
        not_ready = [r for r in early if r.status_code == 409]
        assert not_ready, "every download was ready at once"
        assert not_ready[0].json()["error"]["code"] == "task_not_ready"
        for item in items:
            assert _wait_done(client, item["conversion_id"], timeout_s=60)["status"] == "done"


def test_list_pages_newest_first(stack: str) -> None:
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        seen: list[str] = []
        token = None
        while True:
            params = {"limit": 5, **({"next_token": token} if token else {})}
            page = client.get("/api/v1/tts", params=params).json()
            seen += [item["conversion_id"] for item in page["items"]]
            token = page["next_token"]
            if not token:
                break
        assert len(seen) == len(set(seen)) >= 22
        submitted = [client.get(f"/api/v1/tts/{cid}").json()["submitted_at"] for cid in seen]
        assert submitted == sorted(submitted, reverse=True)
        stats = client.get("/api/v1/tts/stats").json()
        assert stats["counts"]["done"] >= 21


def _fetch(client: httpx.Client, conversion_id: str) -> tuple[bytes, dict]:
    task = _wait_done(client, conversion_id, timeout_s=60)
    assert task["status"] == "done", task
    link = client.get(f"/api/v1/tts/{conversion_id}/download").json()
    return httpx.get(link["url"], timeout=30).content, task


def test_three_languages_from_the_model_store_each_in_its_own_format_and_rate(stack: str) -> None:
    # Given the stack's three languages, served out of the model store on moto
    cases = [
        ("fin", "wav", 24000, "Hyvää huomenta, tämä on testi."),
        ("eng", "ogg_opus", 48000, "Good morning, this is a test."),
        ("swh", "mp3", 22050, "Habari ya asubuhi, hii ni jaribio."),
    ]
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        voices = client.get("/api/v1/voices").json()
        assert {v["code"] for v in voices["languages"]} == {"fin", "eng", "swh"}
        ids = [
            _submit(client, text, language=code, format=fmt, sample_rate=rate).json()["conversion_id"]
            for code, fmt, rate, text in cases
        ]
        # Then each decodes at the rate asked for
        for conversion_id, (_, fmt, rate, _) in zip(ids, cases, strict=True):
            audio, task = _fetch(client, conversion_id)
            data, decoded_rate = sf.read(io.BytesIO(audio), dtype="float32")
            assert decoded_rate == rate == task["sampling_rate"], fmt
            assert len(data) > rate // 10, fmt


def test_speed_halves_the_duration_and_formats_carry_the_same_samples(stack: str) -> None:
    text = "Nopeus muuttaa puheen kestoa, mutta ei sen sisältöä."
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        normal = _submit(client, text, speed=1.0).json()["conversion_id"]
        fast = _submit(client, text, speed=2.0).json()["conversion_id"]
        flac = _submit(client, text, speed=1.0, format="flac").json()["conversion_id"]
        normal_audio, normal_task = _fetch(client, normal)
        _, fast_task = _fetch(client, fast)
        flac_audio, _ = _fetch(client, flac)
    # VITS rounds each token's duration up to whole frames, so speed 2 gives half the frames plus at most one
    # frame per token (the tiny model's tokens are short, which makes that rounding visible): with add_blank
    # a text has at most 2 x chars + 1 tokens, and a frame is 256 samples at 16 kHz.
    half = normal_task["duration_s"] / 2
    rounding = (2 * len(text) + 1) * 256 / 16000
    assert half - 256 / 16000 <= fast_task["duration_s"] <= half + rounding
    assert fast_task["duration_s"] < normal_task["duration_s"] * 0.75
    wav_samples, _ = sf.read(io.BytesIO(normal_audio), dtype="int16")
    flac_samples, _ = sf.read(io.BytesIO(flac_audio), dtype="int16")
    assert (wav_samples == flac_samples).all()


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"language": "deu"}, "language"),
        ({"format": "ogg_opus", "sample_rate": 22050}, "sample_rate"),
    ],
)
def test_an_unserved_language_or_an_impossible_rate_is_422(stack: str, payload: dict, loc: str) -> None:
    with httpx.Client(headers=AUTH, base_url=stack, timeout=30) as client:
        response = _submit(client, "Hei.", **payload)
    assert response.status_code == 422, response.text
    assert loc in response.text


def _admin(endpoint: str, *args: str) -> dict:
    """`tts-admin --local` against the stack's moto, as an operator runs it; its JSON output."""
    done = subprocess.run(
        [sys.executable, "-m", "tts_common.admin", "--local", "--endpoint-url", endpoint, *args, "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_tenants_see_only_their_own_conversions(stack: str, local: LocalStack) -> None:
    """The issue's `done when`: no key is 401, the printed key works, a second tenant's key made with the
    admin command sees none of the first's conversions, and the same text is one conversion per tenant."""
    # Given: no key, then the development key, then a key for a second tenant made with tts-admin
    assert httpx.get(f"{stack}/api/v1/tts", timeout=30).status_code == 401
    created = _admin(local.moto_url, "keys", "create", "--tenant", "e2e-other", "--name", "second")
    other = {"Authorization": f"Bearer {created['key']}"}
    text = "Kaksi asiakasta, sama lause."
    with (
        httpx.Client(headers=AUTH, base_url=stack, timeout=30) as first,
        httpx.Client(headers=other, base_url=stack, timeout=30) as second,
    ):
        mine = _submit(first, text).json()
        theirs = _submit(second, text).json()
        # Then: two conversions, neither a dedupe hit
        assert mine["conversion_id"] != theirs["conversion_id"]
        assert (mine["deduplicated"], theirs["deduplicated"]) == (False, False)
        assert _wait_done(first, mine["conversion_id"], timeout_s=60)["status"] == "done"
        # ...and the second tenant sees nothing of the first's: get, download, list, stats
        for path in (f"/api/v1/tts/{mine['conversion_id']}", f"/api/v1/tts/{mine['conversion_id']}/download"):
            response = second.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "task_not_found"
        listed = [item["conversion_id"] for item in second.get("/api/v1/tts").json()["items"]]
        assert listed == [theirs["conversion_id"]]
        assert second.get("/api/v1/tts/stats").json()["submitted"] == 1
        # When the second key is revoked, Then it stops working at once
        assert _admin(local.moto_url, "keys", "revoke", created["key_id"])["active"] is False
        refused = second.get("/api/v1/tts")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "invalid_api_key"
