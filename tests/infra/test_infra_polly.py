"""The Amazon Polly routes on AWS: the API function reads SigV4 credentials (GetItem on the key table),
decrypts them for that purpose only, writes only filtered speech-mark copies, and the gateway's refusals carry
the error type botocore reads."""

from __future__ import annotations

import pytest
from infra_helpers import Assembly, actions_of, function_with_handler, policy_statements_of_role, render

from infra import constants
from infra.capabilities.polly_credentials import KMS_KEY_ENV
from tts_common.credentials import PURPOSE_SIGV4
from tts_common.webhook_secrets import CONTEXT_PURPOSE

pytestmark = pytest.mark.infra


def _api_statements(app: Assembly) -> list[dict]:
    role = function_with_handler(app, constants.API_HANDLER)["Properties"]["Role"]["Fn::GetAtt"][0]
    return policy_statements_of_role(app, role)


def test_the_api_may_decrypt_sigv4_secrets_only(lambda_app: Assembly) -> None:
    statements = _api_statements(lambda_app)
    decrypts = [s for s in statements if "kms:Decrypt" in actions_of(s)]

    assert len(decrypts) == 1
    assert decrypts[0]["Condition"] == {
        "StringEquals": {f"kms:EncryptionContext:{CONTEXT_PURPOSE}": PURPOSE_SIGV4}
    }
    assert constants.OUTPUT_CREDENTIALS_KEY_ARN in render(decrypts[0]["Resource"])
    actions = {a for s in statements for a in actions_of(s)}
    assert not actions & {"kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"}


def test_the_api_reads_one_credential_at_a_time_and_writes_only_filtered_marks(lambda_app: Assembly) -> None:
    statements = _api_statements(lambda_app)
    key_table = [s for s in statements if constants.OUTPUT_KEY_TABLE_ARN in render(s["Resource"])]
    puts = [render(s["Resource"]) for s in statements if "s3:PutObject" in actions_of(s)]

    assert [actions_of(s) for s in key_table] == [["dynamodb:GetItem"]]
    assert any("/audio/*.polly-*" in put for put in puts)
    assert not any('/audio/*"' in put for put in puts), "never every object under audio/"


def test_the_api_knows_the_key_table_and_the_credentials_key(lambda_app: Assembly) -> None:
    variables = function_with_handler(lambda_app, constants.API_HANDLER)["Properties"]["Environment"][
        "Variables"
    ]

    assert "TTS_KEY_TABLE" not in variables
    assert "TTS_CREDENTIALS_TABLE" in variables
    assert constants.OUTPUT_CREDENTIALS_KEY_ARN in render(variables[KMS_KEY_ENV])


def test_the_authorizer_reads_the_key_table_only_and_never_decrypts(lambda_app: Assembly) -> None:
    role = function_with_handler(lambda_app, constants.AUTHORIZER_HANDLER)["Properties"]["Role"][
        "Fn::GetAtt"
    ][0]
    actions = {a for s in policy_statements_of_role(lambda_app, role) for a in actions_of(s)}

    assert "dynamodb:GetItem" in actions
    assert not {a for a in actions if a.startswith("kms:")}


def test_refusals_name_the_error_botocore_raises(lambda_app: Assembly) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"].get("ResponseParameters", {})
        for r in lambda_app.resources(lambda_app.service_name, "AWS::ApiGateway::GatewayResponse").values()
    }

    for refused in ("ACCESS_DENIED", "UNAUTHORIZED", "INVALID_API_KEY"):
        assert (
            responses[refused]["gatewayresponse.header.x-amzn-ErrorType"] == "'UnrecognizedClientException'"
        )
    assert responses["THROTTLED"]["gatewayresponse.header.x-amzn-ErrorType"] == "'ThrottlingException'"
