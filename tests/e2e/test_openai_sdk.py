"""The real `openai` SDK against the local stack over HTTP, as the README's snippet uses it: only `base_url`
and `api_key` differ from talking to OpenAI. Each format decodes, speed changes the duration, bad input and
bad keys raise the SDK's own errors, and audio over INLINE_AUDIO_MAX_BYTES comes via the 303 it follows."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from tests.e2e.conftest import LocalStack, run_local_stack

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.timeout(300)

RATE = 24_000
# Small enough that a few seconds of 24 kHz WAV (48 kB/s) goes through the 303, large enough for short MP3s.
INLINE_LIMIT = 120_000
TEXT = "Hei maailma, tämä on testi."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    env = {"INLINE_AUDIO_MAX_BYTES": str(INLINE_LIMIT), "TTS_VOICE_ALIASES": "alloy=eng"}
    with run_local_stack(tmp_path_factory.mktemp("openai-stack"), extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack):
    # What a user writes; max_retries raised as the README advises for a CPU worker.
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=6) as sdk:
        yield sdk


def _decode(body: bytes, response_format: str) -> tuple[np.ndarray, int]:
    if response_format == "pcm":  # 24 kHz s16le, no header
        return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768, RATE
    if response_format == "aac":
        av = pytest.importorskip("av")
        with av.open(io.BytesIO(body), format="adts") as container:
            frames = list(container.decode(audio=0))
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), frames[0].sample_rate
    data, rate = sf.read(io.BytesIO(body), dtype="float32")
    return np.asarray(data), int(rate)


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
        ("pcm", "audio/pcm"),
        ("aac", "audio/aac"),
    ],
)
def test_speech_in_each_format_decodes_at_24_khz(client, response_format: str, content_type: str) -> None:
    response = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="fin", input=TEXT, response_format=response_format
    )
    assert response.headers["content-type"] == content_type
    assert len(response.headers["x-tts-conversion-id"]) == 32
    samples, rate = _decode(response.content, response_format)
    assert rate == RATE
    assert len(samples) > RATE // 10
    assert np.max(np.abs(samples)) > 0


def test_speed_changes_the_duration(client) -> None:
    text = "Nopeus muuttaa puheen kestoa."
    durations = {}
    for speed in (0.5, 1.0, 2.0):
        audio = client.audio.speech.create(
            model="tts-1", voice="fin", input=text, response_format="flac", speed=speed
        )
        samples, rate = _decode(audio.content, "flac")
        durations[speed] = len(samples) / rate
    assert durations[0.5] > durations[1.0] * 1.5
    assert durations[2.0] < durations[1.0] * 0.75


def test_an_alias_and_openais_voice_names_speak_served_languages(client) -> None:
    english = client.audio.speech.with_raw_response.create(model="gpt-4o-mini-tts", voice="alloy", input=TEXT)
    default = client.audio.speech.with_raw_response.create(model="tts-1-hd", voice="nova", input=TEXT)
    assert english.headers["x-tts-conversion-id"] != default.headers["x-tts-conversion-id"]
    # the same request again is the same conversion, deduplicated
    again = client.audio.speech.with_raw_response.create(model="tts-1-hd", voice="nova", input=TEXT)
    assert again.headers["x-tts-conversion-id"] == default.headers["x-tts-conversion-id"]
    assert again.headers["x-tts-deduplicated"] == "true"
    assert again.content == default.content


def test_oversized_input_and_unknown_values_raise_bad_request(client) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="fin", input="a" * 4097)
    assert (caught.value.code, caught.value.param, caught.value.type) == (
        "string_above_max_length",
        "input",
        "invalid_request_error",
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="klingon", input=TEXT)
    assert caught.value.param == "voice"
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="whisper-1", voice="fin", input=TEXT)
    assert caught.value.code == "model_not_found"


def test_a_bad_key_raises_authentication_error(stack: LocalStack) -> None:
    sdk = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="tts_not_a_key", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.audio.speech.create(model="tts-1", voice="fin", input=TEXT)
    assert caught.value.code == "invalid_api_key"


def test_big_audio_arrives_through_the_303_the_sdk_follows(client) -> None:
    text = " ".join(["Tämä on pitkä lause, joka tekee äänestä suuren."] * 6)
    response = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="fin", input=text, response_format="wav"
    )
    http = response.http_response
    assert [r.status_code for r in http.history] == [303]
    assert "X-Amz-Signature" in str(http.url)  # the presigned GET, fetched without our key
    assert len(response.content) > INLINE_LIMIT
    samples, rate = _decode(response.content, "wav")
    assert rate == RATE
    assert len(samples) * 2 > INLINE_LIMIT - 100
