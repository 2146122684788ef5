"""The notifier's collaborators, built from its settings (the Lambda handler and the local poller)."""

from __future__ import annotations

from typing import Any

from tts_common.adapters.aws import client
from tts_common.settings import NotifierSettings
from tts_common.webhook_secrets import WebhookSecretStore
from tts_common.wiring import audio_store_from, repository_from
from tts_notifier.logic import Notifier, Policy


class NotificationsQueue:
    """Re-send a message onto the notifications queue after a delay (SQS DelaySeconds, at most 900)."""

    def __init__(self, *, sqs_client: Any, queue_url: str) -> None:
        self._sqs, self._url = sqs_client, queue_url

    def resend(self, body: str, delay_s: int) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=body, DelaySeconds=max(0, min(900, delay_s)))


def policy_from(settings: NotifierSettings) -> Policy:
    return Policy(
        allow_loopback=settings.webhook_allow_loopback,
        retry_window_s=settings.webhook_retry_window_s,
        backoff_scale=settings.webhook_backoff_scale,
        presign_expiry_s=settings.presign_expiry_s,
        connect_timeout_s=settings.webhook_connect_timeout_s,
        read_timeout_s=settings.webhook_read_timeout_s,
    )


def notifier_from(settings: NotifierSettings) -> Notifier:
    secrets = WebhookSecretStore(
        dynamodb_client=client("dynamodb", settings),
        kms_client=client("kms", settings),
        table_name=settings.key_table_name,
    )
    queue = NotificationsQueue(sqs_client=client("sqs", settings), queue_url=settings.notifications_queue_url)
    return Notifier(
        repository=repository_from(settings),
        audio_store=audio_store_from(settings),
        secrets_for=secrets.secrets_for,
        resend=queue.resend,
        policy=policy_from(settings),
    )
