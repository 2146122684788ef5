"""The event channel: an SNS topic for lifecycle messages, fanned out to the events queue (raw delivery)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.capabilities.work_queue import WorkQueue

AWS_MANAGED_SNS_KEY = "alias/aws/sns"


class EventChannel(Construct):
    """Every publisher (API, worker, task events) sends here; subscribers filter on the `status` attribute."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        consumer_visibility_timeout: Duration,
        max_receive_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", enforce_ssl=True)
        # The AWS-managed SNS key, set on the L1: its key policy already admits this account's publishers,
        # while the
        # L2 would add kms grants on key/* to every publisher's role.
        cfn_topic: sns.CfnTopic = self.topic.node.default_child  # type: ignore[assignment]
        cfn_topic.kms_master_key_id = AWS_MANAGED_SNS_KEY
        self.events = WorkQueue(
            self,
            "Events",
            visibility_timeout=consumer_visibility_timeout,
            max_receive_count=max_receive_count,
        )
        # Raw delivery: the consumer parses the body as the LifecycleEvent JSON itself.
        self.topic.add_subscription(
            subscriptions.SqsSubscription(self.events.queue, raw_message_delivery=True)
        )
