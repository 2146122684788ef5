"""POST /v1/audio/speech in-process (moto, TestClient, a fake wait clock): the voice/format/model rules, the
OpenAI error shape, the bounded wait's three endings (audio, pending 503, failed 500), the 303 for big audio,
and the real `openai` SDK retrying a pending answer onto the same conversion."""

from __future__ import annotations

import pytest

from tests.api.support import fail_task, finish_task

AUDIO = b"ID3\x04\x00fake-mp3-bytes" + bytes(range(200))
SPEECH = "/v1/audio/speech"


class FakeWait:
    """The route's wait clock: sleeping moves time; `on_sleep` plays the worker's part mid-wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self.on_sleep = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            hook()


@pytest.fixture
def wait():
    return FakeWait()


@pytest.fixture
def speech_app(make_app, wait):
    from tts_api import deps

    def build(**overrides):
        app = make_app(**overrides)
        app.dependency_overrides[deps.get_wait_clock] = lambda: deps.WaitClock(
            monotonic=wait.monotonic, sleep=wait.sleep
        )
        return app

    return build


@pytest.fixture
def bearer(api_key):
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def speech(speech_app, bearer):
    from fastapi.testclient import TestClient

    return TestClient(speech_app(), headers=bearer)


def _body(**extra):
    return {"model": "tts-1", "input": "Hei maailma", "voice": "fin", **extra}


# -- rules, without HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def rules_settings(api_settings):
    return api_settings.model_copy(
        update={"tts_languages": ("fin", "eng"), "tts_voice_aliases": (("alloy", "eng"), ("suvi", "fin"))}
    )


@pytest.mark.parametrize(
    ("voice", "language"),
    [
        ("alloy", "eng"),  # an alias wins over OpenAI's name
        ("ALLOY", "eng"),
        ("suvi", "fin"),
        ("eng", "eng"),
        ("fi", "fin"),  # any form languages.resolve takes
        ("nova", "fin"),  # an OpenAI voice without alias: the default language
        ("cedar", "fin"),
        ({"id": "eng"}, "eng"),  # the SDK's {"id": ...} form
    ],
)
def test_voice_rule(rules_settings, voice, language):
    from tts_api.routes.openai_speech import OpenAISpeechRequest, resolve_voice

    body = OpenAISpeechRequest.model_validate(_body(voice=voice))
    assert resolve_voice(body.voice, settings=rules_settings) == language


def test_an_unknown_voice_names_what_is_served(rules_settings):
    from tts_api.routes.openai_speech import OpenAIError, resolve_voice

    with pytest.raises(OpenAIError) as caught:
        resolve_voice("swh", settings=rules_settings)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, "voice", "invalid_value")
    assert "fin, eng" in caught.value.message
    assert "alloy=eng" in caught.value.message


def test_format_rule_and_the_rate_is_always_24_khz(rules_settings):
    from tts_api.routes.openai_speech import OpenAIError, OpenAISpeechRequest, voice_request
    from tts_common.voice import AudioFormat

    expected = {
        "mp3": AudioFormat.MP3,
        "opus": AudioFormat.OGG_OPUS,
        "aac": AudioFormat.AAC,
        "flac": AudioFormat.FLAC,
        "wav": AudioFormat.WAV,
        "pcm": AudioFormat.PCM,
    }
    for name, audio_format in expected.items():
        voice = voice_request(
            OpenAISpeechRequest.model_validate(_body(response_format=name, speed=0.25)),
            settings=rules_settings,
        )
        assert (voice.format, voice.sample_rate, voice.speed, voice.language) == (
            audio_format,
            24_000,
            0.25,
            "fin",
        )
    default = voice_request(OpenAISpeechRequest.model_validate(_body()), settings=rules_settings)
    assert default.format is AudioFormat.MP3  # OpenAI's default
    with pytest.raises(OpenAIError, match="served: mp3, opus, aac, flac, wav, pcm"):
        voice_request(
            OpenAISpeechRequest.model_validate(_body(response_format="ogg")), settings=rules_settings
        )


@pytest.mark.parametrize(
    ("model", "accepted"),
    [
        ("tts-1", True),
        ("tts-1-hd", True),
        ("gpt-4o-mini-tts", True),
        ("gpt-4o-mini-tts-2025-12-15", True),
        ("whisper-1", False),
        ("gpt-4o", False),
    ],
)
def test_model_rule(rules_settings, model, accepted):
    from tts_api.routes.openai_speech import OpenAIError, check_model

    if accepted:
        check_model(model, settings=rules_settings)
    else:
        with pytest.raises(OpenAIError) as caught:
            check_model(model, settings=rules_settings)
        assert (caught.value.param, caught.value.code) == ("model", "model_not_found")


def test_aliases_must_name_served_languages(resources, monkeypatch):
    from tts_common.exceptions import ConfigurationError
    from tts_common.settings import ApiSettings, load_settings

    monkeypatch.setenv("TTS_LANGUAGES", "fin,eng")
    monkeypatch.setenv("TTS_VOICE_ALIASES", "alloy=en, Nova=fin")
    assert load_settings(ApiSettings).voice_aliases == {"alloy": "eng", "nova": "fin"}
    monkeypatch.setenv("TTS_VOICE_ALIASES", "alloy=swh")
    with pytest.raises(ConfigurationError, match="TTS_VOICE_ALIASES: alloy=swh not in TTS_LANGUAGES"):
        load_settings(ApiSettings)


# -- errors in OpenAI's shape -------------------------------------------------------------------------------


def _error(response, status: int, *, param, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code)
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    return error


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (_body(input="a" * 4097), "input", "string_above_max_length"),
        (_body(speed=4.5), "speed", "decimal_above_max_value"),
        (_body(speed=0.1), "speed", "decimal_below_min_value"),
        ({"model": "tts-1", "voice": "fin"}, "input", "missing_required_parameter"),
        (_body(model="dall-e-3"), "model", "model_not_found"),
        (_body(voice="klingon"), "voice", "invalid_value"),
        (_body(response_format="m4a"), "response_format", "invalid_value"),
        (_body(stream_format="sse"), "stream_format", "invalid_value"),
        (_body(input="   "), "input", "invalid_value"),  # nothing to say once normalized
    ],
)
def test_bad_requests_are_400_in_openai_shape(speech, body, param, code):
    _error(speech.post(SPEECH, json=body), 400, param=param, code=code)


def test_exactly_4096_characters_are_accepted(speech, wait):
    response = speech.post(SPEECH, json=_body(input="a" * 4096))
    assert response.status_code == 503  # accepted, still queued after the wait


def test_malformed_json_is_400(speech):
    response = speech.post(SPEECH, content=b"{nope", headers={"Content-Type": "application/json"})
    _error(response, 400, param=None, code="invalid_json")


def test_no_key_or_a_bad_key_is_401_with_a_bearer_challenge(speech_app):
    from fastapi.testclient import TestClient

    client = TestClient(speech_app())
    error = _error(client.post(SPEECH, json=_body()), 401, param=None, code="missing_api_key")
    assert error["message"]
    response = client.post(SPEECH, json=_body(), headers={"Authorization": "Bearer tts_nope"})
    _error(response, 401, param=None, code="invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_rest_of_the_api_keeps_its_own_error_shape(speech):
    response = speech.post("/api/v1/tts/convert", json={"text": ""})
    assert response.status_code == 422
    assert set(response.json()["error"]) >= {"code", "message"}
    assert "type" not in response.json()["error"]


# -- the wait's endings -------------------------------------------------------------------------------------


def test_audio_written_during_the_wait_is_the_answer(speech, wait, repository, resources, monkeypatch):
    from tts_api import service

    submitted: list[str] = []
    original = service.submit_texts

    def spy(**kwargs):
        result = original(**kwargs)
        submitted.append(result[0].task.task_id)
        return result

    monkeypatch.setattr(service, "submit_texts", spy)
    wait.on_sleep = lambda: finish_task(repository, resources, submitted[0], audio=AUDIO)

    response = speech.post(SPEECH, json=_body(response_format="mp3"))

    assert response.status_code == 200
    assert response.content == AUDIO
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["X-TTS-Conversion-Id"] == submitted[0]
    assert response.headers["X-TTS-Deduplicated"] == "false"
    assert response.headers["Cache-Control"] == "no-store"
    assert 0 < wait.slept < 1


def test_still_running_at_the_deadline_is_a_retryable_503_then_the_retry_converges(
    speech, wait, repository, resources, api_settings
):
    first = speech.post(SPEECH, json=_body(input="Pitkä teksti"))
    error = _error(first, 503, param=None, code="synthesis_pending")
    task_id = error["conversion_id"]
    assert (error["status"], first.headers["X-TTS-Conversion-Id"]) == ("queued", task_id)
    assert (first.headers["retry-after-ms"], first.headers["Retry-After"]) == ("1000", "1")
    assert first.headers["x-should-retry"] == "true"
    assert wait.slept == pytest.approx(api_settings.sync_wait_s)

    finish_task(repository, resources, task_id, audio=AUDIO)
    retry = speech.post(SPEECH, json=_body(input="Pitkä teksti"))

    assert retry.status_code == 200
    assert retry.content == AUDIO
    assert retry.headers["X-TTS-Conversion-Id"] == task_id
    assert retry.headers["X-TTS-Deduplicated"] == "true"


def test_a_failed_synthesis_is_500_that_the_sdk_does_not_retry(speech, wait, repository, monkeypatch):
    from tts_api import service

    submitted: list[str] = []
    original = service.submit_texts

    def spy(**kwargs):
        result = original(**kwargs)
        submitted.append(result[0].task.task_id)
        return result

    monkeypatch.setattr(service, "submit_texts", spy)
    wait.on_sleep = lambda: fail_task(repository, submitted[0])

    response = speech.post(SPEECH, json=_body(input="Epäonni"))
    task_id = submitted[0]

    error = _error(response, 500, param=None, code="synthesis_failed")
    assert (error["message"], error["conversion_id"], error["reason"]) == (
        "nothing to say",
        task_id,
        "empty_tokenization",
    )
    assert response.headers["x-should-retry"] == "false"


def test_audio_larger_than_the_inline_limit_is_a_303_to_a_presigned_url(
    speech_app, bearer, repository, resources
):
    from fastapi.testclient import TestClient

    client = TestClient(speech_app(inline_audio_max_bytes=100), headers=bearer)
    task_id = client.post(SPEECH, json=_body(input="Iso")).json()["error"]["conversion_id"]
    finish_task(repository, resources, task_id, audio=AUDIO)

    response = client.post(SPEECH, json=_body(input="Iso"), follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["X-TTS-Conversion-Id"] == task_id
    location = response.headers["location"]
    assert f"{task_id}.mp3" in location
    assert "X-Amz-Signature" in location


def test_the_wait_is_cut_by_the_lambda_time_left(speech_app, bearer, wait):
    """Under Mangum the Lambda context rides in the scope: 10 s left leaves 10 - 6 = 4 s of waiting."""
    from fastapi.testclient import TestClient

    app = speech_app()

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    async def with_context(scope, receive, send):
        scope["aws.context"] = Context()
        await app(scope, receive, send)

    client = TestClient(with_context, headers=bearer)
    assert client.post(SPEECH, json=_body(input="Lambda")).status_code == 503
    assert wait.slept == pytest.approx(4.0)


# -- the real SDK, in-process ----------------------------------------------------------------------------


def test_the_sdk_retries_a_pending_answer_onto_the_same_conversion(
    speech_app, api_key, wait, repository, resources
):
    openai = pytest.importorskip("openai")
    import httpx2
    from fastapi.testclient import TestClient

    inner = TestClient(speech_app())
    seen: list[tuple[int, str | None, str | None]] = []

    class ViaTestClient(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            got = inner.request(
                request.method,
                str(request.url),
                headers=dict(request.headers),
                content=request.read(),
                follow_redirects=False,
            )
            seen.append(
                (
                    got.status_code,
                    got.headers.get("X-TTS-Conversion-Id"),
                    request.headers.get("x-stainless-retry-count"),
                )
            )
            if got.status_code == 503:  # the worker finishes while the SDK waits to retry
                finish_task(repository, resources, got.headers["X-TTS-Conversion-Id"], audio=AUDIO)
            return httpx2.Response(
                got.status_code, headers=list(got.headers.multi_items()), content=got.content
            )

    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key=api_key, http_client=httpx2.Client(transport=ViaTestClient())
    )
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Odota hetki")

    assert audio.content == AUDIO
    assert [s[0] for s in seen] == [503, 200]
    assert seen[0][1] == seen[1][1]  # one conversion
    assert [s[2] for s in seen] == ["0", "1"]


def test_through_api_gateway_rest_the_audio_goes_back_base64_for_the_binary_media_type(
    resources, repository, lambda_context
):
    """API Gateway (binary media types */*) hands the JSON body over base64-encoded; Mangum decodes it, and
    answers the audio base64-encoded with isBase64Encoded, which the gateway turns back into bytes."""
    import base64
    import json

    from tests.api.support import TENANT, api_event
    from tts_api import handler as module

    # The same text and voice submitted through /convert first: the speech request is that conversion.
    voice = {"language": "fin", "format": "mp3", "sample_rate": 24000, "speed": 1.0}
    created = module.handler(
        api_event(
            "rest_v1",
            method="POST",
            path="/api/v1/tts/convert",
            body={"text": "Portti", **voice},
            tenant=TENANT,
        ),
        lambda_context,
    )
    task_id = json.loads(created["body"])["conversion_id"]
    finish_task(repository, resources, task_id, audio=AUDIO)
    event = api_event("rest_v1", method="POST", path=SPEECH, body=_body(input="Portti"), tenant=TENANT)
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    event["headers"]["accept"] = "application/octet-stream"

    response = module.handler(event, lambda_context)

    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == AUDIO
    assert response["headers"]["x-tts-conversion-id"] == task_id
    assert response["headers"]["x-tts-deduplicated"] == "true"
