"""boto3's real Polly client against the local stack over HTTP, with credentials from `tts-admin credentials
create`: only `endpoint_url` and the credentials differ from code written for Amazon Polly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
import soundfile as sf
from botocore.exceptions import ClientError

from tests.e2e.conftest import ROOT, LocalStack

pytestmark = pytest.mark.e2e

BUCKET = "tts-audio"  # local/provision.py's
TEXT = "Hyvää huomenta! Tänään paistaa aurinko."


def admin(stack: LocalStack, *args: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(["layers/common", "."]),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tts_common.admin", "--local", "--endpoint-url", stack.moto_url, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def polly_for(stack: LocalStack, access_key_id: str, secret: str) -> Any:
    return boto3.client(
        "polly",
        region_name="eu-north-1",
        endpoint_url=stack.url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
    )


@pytest.fixture(scope="module")
def tenant_credentials(local_stack: LocalStack) -> dict[str, Any]:
    return admin(local_stack, "credentials", "create", "--tenant", "polly-e2e", "--name", "e2e", "--json")


@pytest.fixture(scope="module")
def polly(local_stack: LocalStack, tenant_credentials: dict[str, Any]) -> Any:
    return polly_for(
        local_stack, tenant_credentials["aws_access_key_id"], tenant_credentials["aws_secret_access_key"]
    )


def wait_completed(polly: Any, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task = polly.get_speech_synthesis_task(TaskId=task_id)["SynthesisTask"]
        if task["TaskStatus"] in {"completed", "failed"}:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.5)


def test_start_get_list_fetch_and_decode(polly: Any) -> None:
    started = polly.start_speech_synthesis_task(
        Text=TEXT, VoiceId="Suvi", LanguageCode="fi-FI", OutputFormat="mp3", OutputS3BucketName=BUCKET
    )["SynthesisTask"]
    assert started["TaskStatus"] in {"scheduled", "inProgress"}

    done = wait_completed(polly, started["TaskId"])
    assert done["TaskStatus"] == "completed", done.get("TaskStatusReason")
    assert done["RequestCharacters"] == len(TEXT)

    listed = [
        task["TaskId"]
        for page in polly.get_paginator("list_speech_synthesis_tasks").paginate(
            Status="completed", PaginationConfig={"PageSize": 1}
        )
        for task in page["SynthesisTasks"]
    ]
    assert started["TaskId"] in listed

    audio = httpx.get(done["OutputUri"], timeout=30)
    assert audio.status_code == 200
    samples, rate = sf.read(io.BytesIO(audio.content))
    assert rate == 22050  # Polly's default for mp3
    assert len(samples) > rate * 0.2


def test_json_output_is_word_marks(polly: Any) -> None:
    started = polly.start_speech_synthesis_task(
        Text=TEXT, VoiceId="fin", OutputFormat="json", SpeechMarkTypes=["word"], OutputS3BucketName=BUCKET
    )["SynthesisTask"]
    done = wait_completed(polly, started["TaskId"])
    assert done["TaskStatus"] == "completed", done.get("TaskStatusReason")

    marks = [json.loads(line) for line in httpx.get(done["OutputUri"], timeout=30).text.splitlines()]
    assert marks
    assert {m["type"] for m in marks} == {"word"}
    assert marks[0]["value"] == "Hyvää"
    assert TEXT.encode()[marks[0]["start"] : marks[0]["end"]].decode() == "Hyvää"


def test_synthesize_speech_returns_a_stream_that_decodes(polly: Any) -> None:
    answer = polly.synthesize_speech(
        Text="Hyvää yötä.", VoiceId="Suvi", OutputFormat="pcm", SampleRate="16000"
    )

    body = answer["AudioStream"].read()
    assert answer["ContentType"] == "audio/pcm"
    assert answer["RequestCharacters"] == len("Hyvää yötä.")
    samples = np.frombuffer(body, dtype="<i2")
    assert len(samples) > 16000 * 0.2
    assert np.abs(samples).max() > 0

    ogg = polly.synthesize_speech(Text="Hyvää yötä.", VoiceId="Suvi", OutputFormat="ogg_vorbis")
    _, rate = sf.read(io.BytesIO(ogg["AudioStream"].read()))
    assert rate == 22050


def test_describe_voices_lists_ours(polly: Any) -> None:
    ids = [voice["Id"] for voice in polly.describe_voices()["Voices"]]

    assert {"fin", "eng", "swh"} <= set(ids)
    assert [v["Id"] for v in polly.describe_voices(LanguageCode="en-US")["Voices"]] == ["eng"]


def test_bad_inputs_raise_the_modeled_exceptions(polly: Any) -> None:
    with pytest.raises(polly.exceptions.TextLengthExceededException):
        polly.synthesize_speech(Text="x" * 3001, VoiceId="Suvi", OutputFormat="mp3")
    with pytest.raises(polly.exceptions.InvalidS3BucketException):
        polly.start_speech_synthesis_task(
            Text=TEXT, VoiceId="Suvi", OutputFormat="mp3", OutputS3BucketName="not-ours"
        )
    with pytest.raises(polly.exceptions.SynthesisTaskNotFoundException):
        polly.get_speech_synthesis_task(TaskId="0" * 32)
    with pytest.raises(polly.exceptions.InvalidNextTokenException):
        polly.list_speech_synthesis_tasks(NextToken="garbage")
    with pytest.raises(polly.exceptions.InvalidSampleRateException):
        polly.synthesize_speech(Text=TEXT, VoiceId="Suvi", OutputFormat="pcm", SampleRate="44100")


def test_another_tenant_cannot_see_the_task(local_stack: LocalStack, polly: Any) -> None:
    task_id = polly.start_speech_synthesis_task(
        Text="Toisen asiakkaan teksti.", VoiceId="Suvi", OutputFormat="mp3", OutputS3BucketName=BUCKET
    )["SynthesisTask"]["TaskId"]
    other = admin(local_stack, "credentials", "create", "--tenant", "someone-else", "--json")
    intruder = polly_for(local_stack, other["aws_access_key_id"], other["aws_secret_access_key"])

    with pytest.raises(intruder.exceptions.SynthesisTaskNotFoundException):
        intruder.get_speech_synthesis_task(TaskId=task_id)


def test_a_wrong_secret_or_a_revoked_key_is_refused(local_stack: LocalStack) -> None:
    made = admin(local_stack, "credentials", "create", "--tenant", "polly-e2e", "--json")
    with pytest.raises(ClientError) as wrong:
        polly_for(local_stack, made["aws_access_key_id"], "not-the-secret").describe_voices()
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"

    admin(local_stack, "credentials", "revoke", made["aws_access_key_id"], "--json")
    with pytest.raises(ClientError) as revoked:
        polly_for(local_stack, made["aws_access_key_id"], made["aws_secret_access_key"]).describe_voices()
    assert revoked.value.response["Error"]["Code"] == "UnrecognizedClientException"
