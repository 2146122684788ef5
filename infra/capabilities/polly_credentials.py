"""What the API function needs for the Amazon Polly routes (tts_api.routes.polly): the tenants' SigV4
credentials, to verify each signature itself (the authorizer never sees the body).

Least privilege: GetItem on the key table (the credential by its access key id; no scans, no writes),
kms:Decrypt on the credentials key only for ciphertext whose encryption context says `tts:purpose = sigv4`
(a webhook secret does not decrypt here, and nothing here can Encrypt), and PutObject only on the filtered
speech-mark copies beside the audio (`audio/*.polly-*`: a json task asking for one mark type).
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from infra.capabilities.grants import grant_key_reads, grant_objects
from tts_common.credentials import PURPOSE_SIGV4
from tts_common.domain import AUDIO_PREFIX
from tts_common.settings import ApiSettings
from tts_common.webhook_secrets import CONTEXT_PURPOSE

KMS_KEY_ENV = str(ApiSettings.model_fields["credentials_kms_key_id"].validation_alias)
CREDENTIALS_TABLE_ENV = str(ApiSettings.model_fields["credentials_table_name"].validation_alias)
# The filtered speech marks the API writes (tts_api.routes.polly._marks_key): `audio/<id>.polly-<types>...`.
POLLY_MARKS_PREFIX = f"{AUDIO_PREFIX}*.polly-"


def grant_polly_credentials(
    function: lambda_.Function,
    *,
    key_table: dynamodb.ITable,
    key_table_name: str,
    credentials_key: kms.IKey,
    bucket: s3.IBucket,
) -> None:
    # Not TTS_KEY_TABLE: the API keeps trusting the authorizer for API keys and never resolves one itself.
    function.add_environment(CREDENTIALS_TABLE_ENV, key_table_name)
    function.add_environment(KMS_KEY_ENV, credentials_key.key_arn)
    grant_key_reads(function, key_table)
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[credentials_key.key_arn],
            conditions={"StringEquals": {f"kms:EncryptionContext:{CONTEXT_PURPOSE}": PURPOSE_SIGV4}},
        )
    )
    grant_objects(
        function,
        bucket,
        prefix=POLLY_MARKS_PREFIX,
        actions=["s3:PutObject"],
        why="the API writes a json Polly task's speech marks of the asked types beside its audio",
    )
