"""The Amazon Polly routes with boto3's real `polly` client (its requests handed to the app in-process, on
moto): modeled exceptions, SigV4 verification, tenant scoping, echoes, OutputUri, speech marks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from tests.api.support import aws_client, fail_task, finish_task
from tts_common.credentials import CredentialStore
from tts_common.domain import MarksFormat, TaskStatus, audio_key_for, marks_key_for
from tts_common.messages import AudioInfo, LifecycleEvent

TENANT, OTHER = "acme", "globex"
MARKS = (
    b'{"time":0,"type":"sentence","start":0,"end":13,"value":"Hyv\\u00e4\\u00e4 y\\u00f6t\\u00e4."}\n'
    b'{"time":0,"type":"word","start":0,"end":6,"value":"Hyv\\u00e4\\u00e4"}\n'
    b'{"time":400,"type":"word","start":7,"end":12,"value":"y\\u00f6t\\u00e4"}\n'
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def credentials(resources, tenant: str) -> tuple[str, str]:
    store = CredentialStore(
        dynamodb_client=aws_client("dynamodb"),
        table_name=resources.key_table_name,
        kms_client=aws_client("kms"),
        kms_key_id=resources.credentials_kms_key_id,
    )
    secret, record = store.create(tenant, "test", datetime.now(UTC))
    return record.access_key_id, secret


def polly_client(app, access_key_id: str, secret: str, *, retries: int = 1) -> Any:
    """boto3's Polly client whose requests go to the app (its own signing, serializing and parsing)."""
    http = TestClient(app, base_url="http://polly.test")
    client = boto3.client(
        "polly",
        region_name="eu-north-1",
        endpoint_url="http://polly.test",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": retries, "mode": "standard"}),
    )

    def send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        answer = http.request(
            request.method,
            url.path + (f"?{url.query}" if url.query else ""),
            content=request.body,
            headers=headers,
        )
        return AWSResponse(request.url, answer.status_code, dict(answer.headers), _Raw(answer.content))

    # First: moto's own before-send handler would answer for its Polly mock otherwise.
    client.meta.events.register_first("before-send", send)
    return client


@pytest.fixture
def creds(resources) -> tuple[str, str]:
    return credentials(resources, TENANT)


@pytest.fixture
def polly(app, creds):
    return polly_client(app, *creds)


@pytest.fixture
def repository(api_settings):
    from tts_api.deps import repository_for

    return repository_for(api_settings)


def start(polly, resources, **extra: Any) -> dict[str, Any]:
    request = {
        "Text": "Hyvää yötä.",
        "VoiceId": "Suvi",
        "OutputFormat": "mp3",
        "OutputS3BucketName": resources.bucket_name,
        **extra,
    }
    return polly.start_speech_synthesis_task(**request)["SynthesisTask"]


def test_start_then_get_until_completed_then_fetch_the_output(polly, resources, repository):
    task = start(polly, resources, SampleRate="16000")

    assert task["TaskStatus"] == "scheduled"
    assert task["VoiceId"] == "Suvi"
    assert task["OutputFormat"] == "mp3"
    assert task["SampleRate"] == "16000"
    assert task["RequestCharacters"] == len("Hyvää yötä.")
    assert task["CreationTime"].tzinfo is not None
    assert "OutputUri" not in task
    stored = repository.get(task["TaskId"], tenant_id=TENANT)
    assert (stored.voice.language, str(stored.voice.format), stored.voice.sample_rate) == (
        "fin",
        "mp3",
        16000,
    )

    finish_task(repository, resources, task["TaskId"], audio=b"ID3 fake mp3")
    done = polly.get_speech_synthesis_task(TaskId=task["TaskId"])["SynthesisTask"]

    assert done["TaskStatus"] == "completed"
    fetched = requests.get(done["OutputUri"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == b"ID3 fake mp3"


def test_the_same_request_is_the_same_task_and_json_is_another(polly, resources):
    first = start(polly, resources)
    again = start(polly, resources)
    marks = start(polly, resources, OutputFormat="json", SpeechMarkTypes=["word"])

    assert again["TaskId"] == first["TaskId"]
    assert marks["TaskId"] != first["TaskId"]
    assert marks["OutputFormat"] == "json"
    assert marks["SpeechMarkTypes"] == ["word"]
    assert "SampleRate" not in marks


def test_list_pages_with_the_paginator_and_filters_by_status(polly, resources, repository):
    ids = [start(polly, resources, Text=f"Lause numero {n}.")["TaskId"] for n in range(3)]
    finish_task(repository, resources, ids[0])
    fail_task(repository, ids[1])

    pages = list(
        polly.get_paginator("list_speech_synthesis_tasks").paginate(PaginationConfig={"PageSize": 1})
    )
    listed = [t["TaskId"] for page in pages for t in page["SynthesisTasks"]]
    completed = [
        t
        for page in polly.get_paginator("list_speech_synthesis_tasks").paginate(Status="completed")
        for t in page["SynthesisTasks"]
    ]
    failed = polly.list_speech_synthesis_tasks(Status="failed")["SynthesisTasks"]
    scheduled = polly.list_speech_synthesis_tasks(Status="scheduled")["SynthesisTasks"]

    assert sorted(listed) == sorted(ids)
    assert len(pages) >= 3
    assert [t["TaskId"] for t in completed] == [ids[0]]
    assert completed[0]["OutputUri"].startswith("http")
    assert [t["TaskId"] for t in failed] == [ids[1]]
    assert failed[0]["TaskStatusReason"] == "empty_tokenization: nothing to say"
    assert [t["TaskId"] for t in scheduled] == [ids[2]]


def test_another_tenants_task_is_not_found(app, polly, resources):
    task = start(polly, resources)
    other = polly_client(app, *credentials(resources, OTHER))

    with pytest.raises(other.exceptions.SynthesisTaskNotFoundException):
        other.get_speech_synthesis_task(TaskId=task["TaskId"])
    with pytest.raises(other.exceptions.SynthesisTaskNotFoundException):
        other.get_speech_synthesis_task(TaskId="f" * 32)
    assert other.list_speech_synthesis_tasks()["SynthesisTasks"] == []


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"Text": "x" * 100_001}, "TextLengthExceededException"),
        ({"OutputS3BucketName": "someone-elses-bucket"}, "InvalidS3BucketException"),
        ({"SampleRate": "44100"}, "InvalidSampleRateException"),
        ({"OutputFormat": "pcm", "SampleRate": "22050"}, "InvalidSampleRateException"),
        ({"SnsTopicArn": "arn:aws:sns:eu-north-1:123456789012:done"}, "InvalidSnsTopicArnException"),
        ({"LanguageCode": "de-DE"}, "LanguageNotSupportedException"),
        ({"TextType": "ssml"}, "InvalidSsmlException"),
        ({"Engine": "neural"}, "EngineNotSupportedException"),
        ({"LexiconNames": ["names"]}, "LexiconNotFoundException"),
        ({"SpeechMarkTypes": ["word"]}, "MarksNotSupportedForFormatException"),
        ({"OutputFormat": "json", "SpeechMarkTypes": ["ssml"]}, "SsmlMarksNotSupportedForTextTypeException"),
        ({"OutputS3KeyPrefix": "x" * 801}, "InvalidS3KeyException"),
    ],
)
def test_bad_requests_raise_the_modeled_exception(polly, resources, extra, error):
    with pytest.raises(getattr(polly.exceptions, error)):
        start(polly, resources, **extra)


@pytest.mark.parametrize(
    "extra",
    [{"VoiceId": "Nobody"}, {"OutputFormat": "wav"}, {"OutputFormat": "json"}, {"Text": " \u200b "}],
)
def test_values_outside_polly_rules_are_a_validation_exception(polly, resources, extra):
    with pytest.raises(ClientError) as caught:
        start(polly, resources, **extra)

    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_bad_ids_and_tokens_raise_the_modeled_exceptions(polly):
    with pytest.raises(polly.exceptions.InvalidTaskIdException):
        polly.get_speech_synthesis_task(TaskId="not-a-task")
    with pytest.raises(polly.exceptions.InvalidNextTokenException):
        polly.list_speech_synthesis_tasks(NextToken="garbage")
    with pytest.raises(polly.exceptions.InvalidNextTokenException):
        polly.describe_voices(NextToken="garbage")
    with pytest.raises(ClientError) as caught:
        polly.list_speech_synthesis_tasks(MaxResults=101)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_voice_and_language_rules(polly, resources, repository, make_app, creds):
    def language(**extra: Any) -> str:
        task_id = start(polly, resources, Text=f"teksti {sorted(extra.items())}", **extra)["TaskId"]
        return repository.get(task_id, tenant_id=TENANT).voice.language

    assert language(VoiceId="Suvi") == "fin"
    assert language(VoiceId="fin") == "fin"
    assert language(VoiceId="fi") == "fin"
    assert language(VoiceId="Joanna") == "fin"  # a Polly voice of an unserved language: the default
    assert language(VoiceId="Joanna", LanguageCode="fi-FI") == "fin"

    aliased = polly_client(
        make_app(tts_languages=("fin", "eng"), tts_polly_voices=(("Aino", "fin"),)), *creds
    )
    task = aliased.start_speech_synthesis_task(
        Text="Good night.", VoiceId="Joanna", OutputFormat="mp3", OutputS3BucketName=resources.bucket_name
    )["SynthesisTask"]
    assert repository.get(task["TaskId"], tenant_id=TENANT).voice.language == "eng"
    voices = aliased.describe_voices()["Voices"]
    assert [(v["Id"], v["LanguageCode"], v["LanguageName"]) for v in voices] == [
        ("fin", "fi", "Finnish"),
        ("eng", "en", "English"),
        ("Aino", "fi", "Finnish"),
    ]
    assert [v["Id"] for v in aliased.describe_voices(LanguageCode="en-GB")["Voices"]] == ["eng"]
    assert aliased.describe_voices(LanguageCode="de-DE")["Voices"] == []
    assert aliased.describe_voices(Engine="neural")["Voices"] == []


def test_describe_voices_lists_the_served_languages(polly):
    voices = polly.describe_voices()["Voices"]

    assert voices == [
        {
            "Id": "fin",
            "Name": "fin",
            "LanguageCode": "fi",
            "LanguageName": "Finnish",
            "SupportedEngines": ["standard"],
        }
    ]


def _done_with_marks(repository, resources, task_id: str) -> None:
    s3 = aws_client("s3")
    s3.put_object(Bucket=resources.bucket_name, Key=marks_key_for(task_id, MarksFormat.JSON), Body=MARKS)
    voice = repository.get(task_id, tenant_id=None).voice
    key = audio_key_for(task_id, voice.format)
    s3.put_object(Bucket=resources.bucket_name, Key=key, Body=b"ID3")
    info = AudioInfo(
        audio_key=key,
        file_size=3,
        format=voice.format,
        sampling_rate=16000,
        duration_s=1.0,
        device="cpu",
        marks=(MarksFormat.JSON, MarksFormat.VTT),
    )
    now = datetime.now(UTC)
    repository.apply_events(
        task_id,
        [
            LifecycleEvent(task_id=task_id, status=TaskStatus.PROCESSING, at=now - timedelta(seconds=1)),
            LifecycleEvent(task_id=task_id, status=TaskStatus.DONE, at=now, audio=info),
        ],
    )


def test_json_output_is_the_speech_marks_of_the_asked_types(polly, resources, repository):
    words = start(polly, resources, OutputFormat="json", SpeechMarkTypes=["word"])
    both = start(polly, resources, OutputFormat="json", SpeechMarkTypes=["sentence", "word"])
    for task in (words, both):
        _done_with_marks(repository, resources, task["TaskId"])

    got_words = polly.get_speech_synthesis_task(TaskId=words["TaskId"])["SynthesisTask"]
    got_both = polly.get_speech_synthesis_task(TaskId=both["TaskId"])["SynthesisTask"]

    assert got_words["TaskStatus"] == "completed"
    lines = [
        json.loads(line) for line in requests.get(got_words["OutputUri"], timeout=10).content.splitlines()
    ]
    assert [m["type"] for m in lines] == ["word", "word"]
    assert requests.get(got_both["OutputUri"], timeout=10).content == MARKS


def test_a_json_task_whose_marks_are_missing_has_failed(polly, resources, repository):
    task = start(polly, resources, OutputFormat="json", SpeechMarkTypes=["word"])
    finish_task(repository, resources, task["TaskId"])  # audio without marks

    got = polly.get_speech_synthesis_task(TaskId=task["TaskId"])["SynthesisTask"]

    assert got["TaskStatus"] == "failed"
    assert got["TaskStatusReason"].startswith("marks_not_available")
    assert "OutputUri" not in got


def _finish_when_queued(repository, resources, stop: threading.Event) -> threading.Thread:
    """The worker's part for SynthesizeSpeech: finish each task as soon as its job is on the queue."""
    from tests.api.support import jobs_on_queue

    def run() -> None:
        while not stop.is_set():
            for job in jobs_on_queue(resources):
                finish_task(repository, resources, job.task_id, audio=b"ID3 spoken")
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_synthesize_speech_answers_the_audio_once_the_task_ends(polly, resources, repository):
    stop = threading.Event()
    thread = _finish_when_queued(repository, resources, stop)
    try:
        answer = polly.synthesize_speech(Text="Hyvää yötä.", VoiceId="Suvi", OutputFormat="mp3")
    finally:
        stop.set()
        thread.join()

    assert answer["AudioStream"].read() == b"ID3 spoken"
    assert answer["ContentType"] == "audio/mpeg"
    assert answer["RequestCharacters"] == len("Hyvää yötä.")


def test_synthesize_speech_still_running_is_a_retryable_service_failure(make_app, creds):
    polly = polly_client(make_app(sync_wait_s=1), *creds)

    with pytest.raises(polly.exceptions.ServiceFailureException) as caught:
        polly.synthesize_speech(Text="Hyvää yötä.", VoiceId="Suvi", OutputFormat="pcm")

    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-retry-after"] == "1000"
    with pytest.raises(polly.exceptions.TextLengthExceededException):
        polly.synthesize_speech(Text="x" * 3001, VoiceId="Suvi", OutputFormat="mp3")


def test_synthesize_speech_json_answers_the_marks(polly, resources, repository):
    task = polly.start_speech_synthesis_task(
        Text="Hyvää yötä.",
        VoiceId="Suvi",
        OutputFormat="json",
        SpeechMarkTypes=["sentence"],
        OutputS3BucketName=resources.bucket_name,
    )["SynthesisTask"]
    _done_with_marks(repository, resources, task["TaskId"])

    # The same request, synchronously: deduplicated onto the done task.
    answer = polly.synthesize_speech(
        Text="Hyvää yötä.", VoiceId="Suvi", OutputFormat="json", SpeechMarkTypes=["sentence"]
    )

    assert [json.loads(line)["type"] for line in answer["AudioStream"].read().splitlines()] == ["sentence"]


def test_a_wrong_secret_an_unknown_or_revoked_key_are_refused(app, resources, creds):
    access_key_id, secret = creds
    with pytest.raises(ClientError) as wrong:
        polly_client(app, access_key_id, secret + "x").describe_voices()
    with pytest.raises(ClientError) as unknown:
        polly_client(app, "TTSAAAAAAAAAAAAAAAAA", secret).describe_voices()
    CredentialStore(
        dynamodb_client=aws_client("dynamodb"),
        table_name=resources.key_table_name,
        kms_client=aws_client("kms"),
    ).revoke(access_key_id, datetime.now(UTC))
    with pytest.raises(ClientError) as revoked:
        polly_client(app, access_key_id, secret).describe_voices()

    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert revoked.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_an_api_key_does_not_open_the_polly_routes(app, api_key):
    answer = TestClient(app).get("/v1/voices", headers={"x-api-key": api_key})

    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert answer.headers["x-amzn-RequestId"]


def gateway_client(lambda_handler, lambda_context, access_key_id: str, secret: str, *, tenant: str) -> Any:
    """boto3's Polly client signing for the API Gateway stage URL; each request becomes the REST (v1) proxy
    event the gateway would send (stage only in requestContext.path, the gateway's own headers added, the
    authorizer's context naming `tenant`) and goes through the Lambda handler (Mangum)."""
    import base64

    from tests.api.support import api_event
    from tts_common.tenancy import CONTEXT_KEY_ID, CONTEXT_TENANT

    host = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    client = boto3.client(
        "polly",
        region_name="us-east-1",
        endpoint_url=f"https://{host}/prod",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )

    def send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        path = url.path.removeprefix("/prod")
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        event = api_event("rest_v1", method=request.method, path=path, query=query or None, headers=headers)
        body = request.body or b""
        event["body"] = body.decode() if body else None
        event["requestContext"]["authorizer"] = {
            "principalId": access_key_id,
            CONTEXT_TENANT: tenant,
            CONTEXT_KEY_ID: access_key_id,
        }
        answer = lambda_handler(event, lambda_context)
        payload = answer.get("body") or ""
        content = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        merged = {**(answer.get("headers") or {})}
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            merged[name] = values[-1]
        return AWSResponse(request.url, answer["statusCode"], merged, _Raw(content))

    client.meta.events.register_first("before-send", send)
    return client


@pytest.fixture
def lambda_handler(resources):
    from tts_api import handler as module

    return module.handler


def test_through_api_gateway_the_stage_path_verifies(lambda_handler, lambda_context, resources, creds):
    client = gateway_client(lambda_handler, lambda_context, *creds, tenant=TENANT)

    task = client.start_speech_synthesis_task(
        Text="Portin takaa.", VoiceId="Suvi", OutputFormat="mp3", OutputS3BucketName=resources.bucket_name
    )["SynthesisTask"]
    listed = client.list_speech_synthesis_tasks(MaxResults=5, Status="scheduled")["SynthesisTasks"]

    assert [t["TaskId"] for t in listed] == [task["TaskId"]]
    assert client.describe_voices(LanguageCode="fi-FI")["Voices"][0]["Id"] == "fin"


def test_through_api_gateway_the_authorizers_tenant_must_be_the_signers(
    lambda_handler, lambda_context, creds
):
    client = gateway_client(lambda_handler, lambda_context, *creds, tenant=OTHER)

    with pytest.raises(ClientError) as caught:
        client.describe_voices()

    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
