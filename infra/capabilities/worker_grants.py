"""What the worker may touch, in both modes: its audio, the input texts, the channel, and task lookups."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from infra.capabilities.grants import allow, grant_objects, grant_task_reads
from tts_common.domain import AUDIO_PREFIX, INPUTS_PREFIX, PARTS_PREFIX
from tts_common.storage.plans import PLAN_PREFIX


def grant_worker(
    grantee: iam.IGrantable,
    *,
    bucket: s3.IBucket,
    topic: sns.ITopic,
    table: dynamodb.ITable,
    model_store_prefix: str,
    jobs_queue: sqs.IQueue,
    parts_queue: sqs.IQueue,
) -> None:
    # s3:GetObject also allows HeadObject, which finds audio a retried job already wrote.
    grant_objects(
        grantee,
        bucket,
        prefix=AUDIO_PREFIX,
        actions=["s3:PutObject", "s3:GetObject"],
        why="the worker writes (and on retry finds) each task's audio",
    )
    grant_objects(
        grantee,
        bucket,
        prefix=INPUTS_PREFIX,
        actions=["s3:GetObject"],
        why="the worker reads input texts too large for the job message",
    )
    grant_objects(
        grantee,
        bucket,
        prefix=model_store_prefix,
        actions=["s3:GetObject"],
        why="the worker downloads the models its image lacks from the model store",
    )
    # Without ListBucket, HeadObject on a missing key answers 403 instead of 404.
    allow(grantee, ["s3:ListBucket"], [bucket.bucket_arn])
    topic.grant_publish(grantee)
    # A job whose task does not exist is dropped unsynthesized: one GetItem per job.
    grant_task_reads(grantee, table)
    # Fan-out (tts_worker.fanout): part objects in, the joined audio out as a multipart upload (copies
    # from parts/ need GetObject there), the plan items (pk plan#<task>) of the tasks table, and both queues
    # (part jobs, join jobs).
    grant_objects(
        grantee,
        bucket,
        prefix=PARTS_PREFIX,
        actions=["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
        why="a long text's parts are stored per task and deleted after the join",
    )
    grant_objects(
        grantee,
        bucket,
        prefix=AUDIO_PREFIX,
        actions=["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
        why="the join assembles a long text's audio as a multipart upload and aborts a dead join's",
    )
    allow(grantee, ["s3:ListBucketMultipartUploads"], [bucket.bucket_arn])
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
            resources=[table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{PLAN_PREFIX}*"]}},
        )
    )
    jobs_queue.grant_send_messages(grantee)
    parts_queue.grant_send_messages(grantee)
