"""The OpenAI-compatible route on AWS: audio passes API Gateway as bytes whatever the client's Accept, the
route sits behind the key authorizer like /api/v1, and the API function can read the audio it answers with."""

from __future__ import annotations

import pytest
from infra_helpers import (
    Assembly,
    actions_of,
    function_with_handler,
    methods_by_path,
    policy_statements_of_role,
)

from infra import constants
from infra.capabilities import api as api_capability

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("app_name", ["lambda_app", "ecs_app"])
def test_every_media_type_is_binary(app_name: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(app_name)
    props = app.only(app.service_name, "AWS::ApiGateway::RestApi")["Properties"]
    # The SDK's Accept is application/octet-stream and botocore sends none: audio/* would base64 them.
    assert props["BinaryMediaTypes"] == ["*/*"] == api_capability.BINARY_MEDIA_TYPES


def test_the_openai_path_goes_through_the_authorizer(lambda_app: Assembly) -> None:
    from tts_api.routes import openai_speech

    assert openai_speech.router.prefix == "/v1/audio"
    methods = methods_by_path(lambda_app)
    # No resource of its own: {proxy+} serves /v1/audio/speech, behind the key authorizer and usage plan.
    assert not any(path.startswith("/v1") for _, path in methods)
    proxy = methods[("ANY", "/{proxy+}")]
    assert proxy["AuthorizationType"] == "CUSTOM"
    assert proxy["ApiKeyRequired"] is True


def test_the_api_function_reads_audio_and_waits_inside_the_gateway_timeout(lambda_app: Assembly) -> None:
    from tts_api.service import LAMBDA_ANSWER_RESERVE_S
    from tts_common.settings import ApiSettings

    function = function_with_handler(lambda_app, constants.API_HANDLER)
    timeout = function["Properties"]["Timeout"]
    wait = ApiSettings.model_fields["sync_wait_s"]
    # The default wait plus the reserve for reading and answering fits the function, which stops before 29 s.
    assert wait.default + LAMBDA_ANSWER_RESERVE_S <= timeout < 29
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    reads = [s for s in policy_statements_of_role(lambda_app, role) if "s3:GetObject" in actions_of(s)]
    assert reads, "the synchronous routes read the audio object"
