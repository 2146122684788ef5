"""The stateful stack: the tasks table and the audio bucket, as the app and a careful operator need them."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from infra_helpers import Assembly

from infra import constants
from tts_common.domain import AUDIO_PREFIX, INPUTS_PREFIX
from tts_common.storage import schema

pytestmark = pytest.mark.infra


def table(app: Assembly) -> dict[str, Any]:
    return app.templates[app.stateful_name]["Resources"]["TasksTable"]


def audio_bucket(app: Assembly) -> dict[str, Any]:
    return app.templates[app.stateful_name]["Resources"]["AudioBucket"]


def test_table_is_keyed_and_billed_as_the_schema_says(lambda_app: Assembly) -> None:
    props = table(lambda_app)["Properties"]
    assert props["KeySchema"] == [{"AttributeName": schema.PARTITION_KEY, "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True


def test_table_has_the_indexes_the_api_queries(lambda_app: Assembly) -> None:
    indexes = {gsi["IndexName"]: gsi for gsi in table(lambda_app)["Properties"]["GlobalSecondaryIndexes"]}
    assert set(indexes) == {name for name, _, _ in schema.INDEXES}
    attribute_types = {
        a["AttributeName"]: a["AttributeType"]
        for a in table(lambda_app)["Properties"]["AttributeDefinitions"]
    }
    for name, partition_key, sort_key in schema.INDEXES:
        gsi = indexes[name]
        assert gsi["KeySchema"] == [
            {"AttributeName": partition_key, "KeyType": "HASH"},
            {"AttributeName": sort_key, "KeyType": "RANGE"},
        ]
        assert attribute_types[partition_key] == "S"
        assert attribute_types[sort_key] == "S"
        assert gsi["Projection"]["ProjectionType"] == "INCLUDE"
        # Key attributes are projected anyway; everything else the list views need is included.
        keys = {schema.PARTITION_KEY, partition_key, sort_key}
        assert set(gsi["Projection"]["NonKeyAttributes"]) == set(schema.INDEX_PROJECTION) - keys


def test_table_is_retained_in_every_stage(lambda_app: Assembly, dev_app: Assembly) -> None:
    for app in (lambda_app, dev_app):
        assert table(app)["DeletionPolicy"] == "Retain"
        assert table(app)["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_private_encrypted_and_logged(lambda_app: Assembly) -> None:
    props = audio_bucket(lambda_app)["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "AES256"}
    assert "LoggingConfiguration" in props
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_every_bucket_refuses_plain_http(lambda_app: Assembly) -> None:
    lambda_app.stateful.resource_count_is("AWS::S3::BucketPolicy", 2)
    lambda_app.stateful.all_resources_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Principal": {"AWS": "*"},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_audio_and_inputs_expire_after_the_retention(lambda_app: Assembly) -> None:
    rules = {r["Id"]: r for r in audio_bucket(lambda_app)["Properties"]["LifecycleConfiguration"]["Rules"]}
    days = lambda_app.config.retention_days
    assert rules["expire-audio"] == {
        "Id": "expire-audio",
        "Prefix": AUDIO_PREFIX,
        "ExpirationInDays": days,
        "Status": "Enabled",
    }
    assert rules["expire-inputs"]["Prefix"] == INPUTS_PREFIX
    assert rules["expire-inputs"]["ExpirationInDays"] == days
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_bucket_is_retained_in_prod_and_destroyed_in_dev(lambda_app: Assembly, dev_app: Assembly) -> None:
    assert audio_bucket(lambda_app)["DeletionPolicy"] == "Retain"
    lambda_app.stateful.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    assert audio_bucket(dev_app)["DeletionPolicy"] == "Delete"
    dev_app.stateful.resource_count_is("Custom::S3AutoDeleteObjects", 2)
    assert table(dev_app)["Properties"]["DeletionProtectionEnabled"] is False


def test_bucket_cors_lets_the_page_and_the_configured_origins_read(
    lambda_app: Assembly, ecs_app: Assembly
) -> None:
    # The try-it page on the API's domain fetches the speech marks behind a presigned URL (test_infra_ui.py).
    for app in (lambda_app, ecs_app):
        (rule,) = audio_bucket(app)["Properties"]["CorsConfiguration"]["CorsRules"]
        assert rule["AllowedOrigins"][1:] == list(app.config.cors_origins)
        assert set(rule["AllowedMethods"]) == {"GET", "HEAD"}


def test_stateful_outputs_are_what_the_service_stack_reads(lambda_app: Assembly) -> None:
    outputs = lambda_app.templates[lambda_app.stateful_name]["Outputs"]
    assert set(constants.STATEFUL_OUTPUTS) <= set(outputs)
    assert outputs[constants.OUTPUT_TABLE_NAME]["Value"] == {"Ref": "TasksTable"}
    assert outputs[constants.OUTPUT_BUCKET_NAME]["Value"] == {"Ref": "AudioBucket"}
    # No exports: the service stack reads outputs by name, so this stack never waits on it.
    assert not any("Export" in output for output in outputs.values())
