"""The audio bucket: WAV files under audio/, large input texts under inputs/, both expire with their tasks."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge
from tts_common.domain import AUDIO_PREFIX, INPUTS_PREFIX, PARTS_PREFIX

# Where the try-it page (GET /ui on the API) is served from: any REST API's default domain in this region.
# The exact API id is not known here: the API lives in the service stack, which reads this stack, and a
# reference back would make the two stacks depend on each other. The origin check guards nothing secret
# anyway: only a presigned URL opens an object, and its holder can read it from any client.
API_GATEWAY_ORIGIN = f"https://*.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"


class AudioBucket(Construct):
    """Private, encrypted, TLS-only, access-logged; retained unless the stage allows destroying it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        retention_days: int,
        destroy_on_removal: bool,
        cors_origins: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if destroy_on_removal else RemovalPolicy.RETAIN

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
            removal_policy=removal,
            auto_delete_objects=destroy_on_removal,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the audio bucket's server access log target; logging it into itself would loop.",
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # SSE-S3: presigned GETs then need no KMS permission, and the key cannot be lost with a stack.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="audio-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-audio", prefix=AUDIO_PREFIX, expiration=Duration.days(retention_days)
                ),
                s3.LifecycleRule(
                    id="expire-inputs",
                    prefix=INPUTS_PREFIX,
                    expiration=Duration.days(retention_days),
                ),
                # A long text's parts (fan-out) live until the join deletes them; this is the backstop.
                s3.LifecycleRule(id="expire-parts", prefix=PARTS_PREFIX, expiration=Duration.days(2)),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            # The page (and any configured origin) reads the speech marks behind a presigned URL.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=[API_GATEWAY_ORIGIN, *cors_origins],
                    max_age=3600,
                )
            ],
            removal_policy=removal,
            auto_delete_objects=destroy_on_removal,
        )
        self.bucket.node.default_child.override_logical_id("AudioBucket")  # type: ignore[union-attr]
