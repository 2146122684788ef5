"""The webhook notifier: another subscriber on the lifecycle channel (ARCHITECTURE.md, "More subscribers").

SNS topic ─(raw delivery, filter: status in done, failed)→ notifications queue (+ DLQ) → notifier Lambda,
which POSTs the signed notification (tts_notifier) and retries by re-sending onto the same queue with
DelaySeconds.
Neither the worker, the API nor the lifecycle consumer changes for it.

Grants, least privilege: GetItem and UpdateItem on the tasks table (read the task, record the webhook's
state; no queries, no deletes), GetItem on the key table (the tenant's secret item), kms:Decrypt on the
credentials key only for ciphertext whose encryption context says `tts:purpose = webhook`, GetObject on
audio/ (a presigned download link is signed with the function's own credentials), SendMessage on its own
queue. The function runs outside any VPC, so no VPC-internal address is reachable, and the address check
(tts_common.webhooks) refuses private, loopback, link-local and metadata ones anyway.
WEBHOOK_ALLOW_LOOPBACK is never set here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import constants
from infra.capabilities.environment import KEY_TABLE_ENV
from infra.capabilities.grants import allow, grant_key_reads, grant_objects
from infra.capabilities.service_function import service_function
from infra.capabilities.work_queue import WorkQueue
from infra.config import DeploymentConfig
from tts_common.domain import AUDIO_PREFIX, TERMINAL_STATUSES
from tts_common.settings import NotifierSettings
from tts_common.webhook_secrets import CONTEXT_PURPOSE, PURPOSE

# One message's worst case: DNS 2 s + connect 2 s + read 5 s + AWS calls (NotifierSettings: 15 s at worst).
NOTIFIER_TIMEOUT = Duration.seconds(60)
# 5 x ~10 s per batch stays well inside the timeout.
BATCH_SIZE = 5
# At most this many notifiers at once: receivers are not flooded, and the account's concurrency is spared.
MAX_CONCURRENCY = 10
MEMORY_MB = 256
# A message that failed this often (the re-send itself failing, a dependency down) moves to the DLQ.
MAX_RECEIVE_COUNT = 5
# AWS's advice for a Lambda event source: six times the function's timeout.
VISIBILITY_TIMEOUT = Duration.seconds(6 * int(NOTIFIER_TIMEOUT.to_seconds()))
NOTIFIED_STATUSES = sorted(str(s) for s in TERMINAL_STATUSES)


def _env(name: str) -> str:
    return str(NotifierSettings.model_fields[name].validation_alias)


class Notifier(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        topic: sns.ITopic,
        table: dynamodb.ITable,
        key_table: dynamodb.ITable,
        key_table_name: str,
        bucket: s3.IBucket,
        credentials_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.notifications = WorkQueue(
            self,
            "Notifications",
            visibility_timeout=VISIBILITY_TIMEOUT,
            max_receive_count=MAX_RECEIVE_COUNT,
        )
        self.queue = self.notifications.queue
        topic.add_subscription(
            subscriptions.SqsSubscription(
                self.queue,
                raw_message_delivery=True,
                filter_policy={"status": sns.SubscriptionFilter.string_filter(allowlist=NOTIFIED_STATUSES)},
            )
        )
        self.function = service_function(
            self,
            "Function",
            code=code,
            handler=constants.NOTIFIER_HANDLER,
            layers=layers,
            environment={
                **environment,
                KEY_TABLE_ENV: key_table_name,
                _env("notifications_queue_url"): self.queue.queue_url,
            },
            timeout=NOTIFIER_TIMEOUT,
            memory_size=MEMORY_MB,
            log_retention_days=config.log_retention_days,
            description="POSTs signed webhooks when a task ends done or failed",
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=BATCH_SIZE,
                max_concurrency=MAX_CONCURRENCY,
                report_batch_item_failures=True,
            )
        )
        allow(self.function, ["dynamodb:GetItem", "dynamodb:UpdateItem"], [table.table_arn])
        grant_key_reads(self.function, key_table)
        grant_objects(
            self.function,
            bucket,
            prefix=AUDIO_PREFIX,
            actions=["s3:GetObject"],
            why="a notification carries a presigned download link of the task's audio",
        )
        self.queue.grant_send_messages(self.function)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[credentials_key.key_arn],
                conditions={"StringEquals": {f"kms:EncryptionContext:{CONTEXT_PURPOSE}": PURPOSE}},
            )
        )
