"""The credentials KMS key: encrypts secrets the service must read back in clear to use them (tenants'
webhook signing secrets, tts_common.webhook_secrets; Polly access-key secrets). A secret is encrypted by the
operator's `tts-admin` with an encryption context naming its purpose and tenant; each function may Decrypt
only with its own purpose (an IAM condition), and none may Encrypt."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from tts_common.webhook_secrets import DEFAULT_LOCAL_KMS_ALIAS


def credentials_key_alias(stack_name: str) -> str:
    """The key's alias on AWS: the local stack's alias and the stack's name, so that two stages in one
    account and region never claim the same alias. `tts-admin --stack` finds the key by the stack's output."""
    return f"{DEFAULT_LOCAL_KMS_ALIAS}-{stack_name}"


class CredentialsKey(Construct):
    """Rotated yearly by KMS; retained with the stateful stack (losing it loses every stored secret)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts tenants' stored secrets (webhook signing, Polly access keys)",
            enable_key_rotation=True,
            alias=credentials_key_alias(Stack.of(self).stack_name),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # A stable logical id: refactoring the construct tree must never replace the key.
        self.key.node.default_child.override_logical_id("CredentialsKey")  # type: ignore[union-attr]
