"""The public API: API Gateway (REST) behind the key authorizer, metered per key by a usage plan, proxying to
the FastAPI function.

The authorizer resolves the caller's key to its tenant and returns the key as the usage identifier
(`apiKeySource: AUTHORIZER`), so each tenant key is also an API Gateway API key in the usage plan (created by
`tts-admin keys create`): throttle and daily quota apply per key, whichever header carried it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants
from infra.capabilities.gateway_responses import add_gateway_responses
from infra.capabilities.grants import grant_objects, grant_table_read_write
from infra.capabilities.service_function import log_group, service_function
from infra.config import DeploymentConfig
from infra.nag import acknowledge
from tts_common.domain import AUDIO_PREFIX, INPUTS_PREFIX
from tts_common.tenancy import CONTEXT_KEY_ID, CONTEXT_TENANT

# API Gateway gives up on a REST integration after 29 s; the function stops before that.
API_TIMEOUT = Duration.seconds(28)
# The try-it page's path (functions/api/tts_api/routes/ui.py): the only methods without the authorizer.
PAGE_PATH = "ui"
CORS_HEADERS = ["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"]
# API Gateway hands a body through as bytes when the request's first Accept type matches one of these, and as
# base64 text otherwise. The openai SDK sends `Accept: application/octet-stream`, botocore (Polly) none, so
# only `*/*` lets /v1/audio/speech and SynthesizeSpeech answer audio. JSON answers are unaffected: Mangum
# marks them isBase64Encoded false; request bodies reach the function base64-encoded and Mangum decodes them.
BINARY_MEDIA_TYPES = ["*/*"]


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        jobs_queue: sqs.IQueue,
        topic: sns.ITopic,
        authorizer: apigw.IAuthorizer,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = service_function(
            self,
            "Function",
            code=code,
            handler=constants.API_HANDLER,
            layers=layers,
            environment={
                **environment,
                "MAX_TEXT_CHARS": str(config.max_text_chars),
                "PRESIGN_EXPIRY_S": str(config.presign_expiry_s),
                "SERVICE_VERSION": config.service_version,
                "CORS_ALLOW_ORIGINS": ",".join(config.cors_origins),
            },
            timeout=API_TIMEOUT,
            memory_size=config.api_memory_mb,
            log_retention_days=config.log_retention_days,
            description="TTS API (FastAPI behind Mangum)",
        )
        self._grant(table=table, bucket=bucket, jobs_queue=jobs_queue, topic=topic)

        access_logs = log_group(self, "AccessLogs", retention_days=config.log_retention_days)
        cors = (
            apigw.CorsOptions(
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=CORS_HEADERS,
                max_age=Duration.hours(1),
            )
            if config.cors_origins
            else None
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Asynchronous text-to-speech API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logging need the account-level CloudWatch role; this creates it if missing.
            cloud_watch_role=True,
            binary_media_types=BINARY_MEDIA_TYPES,
            # Usage plans meter the key the authorizer returns (usageIdentifierKey), not an x-api-key header.
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=_access_log_format(),
                method_options=_page_method_options(config),
            ),
        )
        # The generated `Endpoint` output is replaced by the app's own ApiUrl output.
        self.rest_api.node.try_remove_child("Endpoint")

        # Bodies are validated by the app (typed errors in its OpenAPI schema); the gateway checks parameters.
        validator = self.rest_api.add_request_validator(
            "ParameterValidator", validate_request_parameters=True, validate_request_body=False
        )
        integration = apigw.LambdaIntegration(self.function, proxy=True)
        # CORS preflights (OPTIONS) stay open: a browser sends them without credentials.
        methods = [
            self.rest_api.root.add_method(
                "ANY",
                integration,
                authorizer=authorizer,
                api_key_required=True,
                request_validator=validator,
            ),
            self.rest_api.root.add_resource("{proxy+}").add_method(
                "ANY",
                integration,
                authorizer=authorizer,
                api_key_required=True,
                request_validator=validator,
                request_parameters={"method.request.path.proxy": True},
            ),
        ]
        page_methods = self._add_page(integration, validator)
        add_gateway_responses(self.rest_api, config=config, cors_headers=_cors_headers(config.cors_origins))

        # No key here: `tts-admin keys create` makes each tenant key an API key and adds it to this plan.
        self.usage_plan = self.rest_api.add_usage_plan(
            "UsagePlan",
            description="Throttle and daily quota for every tenant key",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_throttle_rate, burst_limit=config.api_throttle_burst
            ),
            quota=apigw.QuotaSettings(limit=config.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)],
        )
        self._acknowledge(methods, page_methods)

    def _add_page(
        self, integration: apigw.Integration, validator: apigw.IRequestValidator
    ) -> list[apigw.Method]:
        """The try-it page (`GET /ui`, `/ui/ui.js`, `/ui/ui.css`) opens in a browser, which sends no key:
        static files, no tenant data. The page then calls the API with the key its user types, through the
        authorizer.

        GET only, one path segment under /ui: any other method or deeper path is not one of these methods,
        so the gateway refuses it or, at most, it reaches `{proxy+}`, behind the authorizer.
        """
        ui = self.rest_api.root.add_resource(PAGE_PATH)
        return [
            ui.add_method(
                "GET",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                api_key_required=False,
                request_validator=validator,
            ),
            ui.add_resource("{file}").add_method(
                "GET",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                api_key_required=False,
                request_validator=validator,
                request_parameters={"method.request.path.file": True},
            ),
        ]

    @property
    def url(self) -> str:
        return self.rest_api.url

    def _grant(
        self, *, table: dynamodb.ITable, bucket: s3.IBucket, jobs_queue: sqs.IQueue, topic: sns.ITopic
    ) -> None:
        grant_table_read_write(self.function, table)
        grant_objects(
            self.function,
            bucket,
            prefix=AUDIO_PREFIX,
            actions=["s3:GetObject"],
            why="the API presigns downloads of any task's audio",
        )
        grant_objects(
            self.function,
            bucket,
            prefix=INPUTS_PREFIX,
            actions=["s3:PutObject"],
            why="the API parks texts too large for a queue message",
        )
        jobs_queue.grant_send_messages(self.function)
        topic.grant_publish(self.function)

    def _acknowledge(self, methods: Sequence[apigw.Method], page_methods: Sequence[apigw.Method]) -> None:
        cfn_api = self.rest_api.node.default_child
        assert cfn_api is not None
        acknowledge(
            cfn_api,
            "AwsSolutions-APIG2",
            "The gateway validates request parameters on every method; bodies are validated by the app, "
            "whose typed 4xx errors are part of its OpenAPI contract; gateway models would duplicate it.",
        )
        cfn_stage = self.rest_api.deployment_stage.node.default_child
        assert cfn_stage is not None
        acknowledge(
            cfn_stage,
            "AwsSolutions-APIG3",
            "No WAF by default: tenant keys checked by the authorizer and metered by a usage plan "
            "(throttle and daily quota) bound abuse; "
            "accounts that mandate WAF attach a web ACL to the stage (docs/DEPLOY.md).",
        )
        for method in methods:
            cfn_method = method.node.default_child
            assert cfn_method is not None
            acknowledge(
                cfn_method,
                "AwsSolutions-COG4",
                "No Cognito user pool: callers are machine clients whose tenant keys the Lambda "
                "authorizer resolves; there are no end users to sign in.",
            )
        for method in page_methods:
            cfn_method = method.node.default_child
            assert cfn_method is not None
            for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                acknowledge(
                    cfn_method,
                    rule,
                    f"GET /{PAGE_PATH} and its script and style sheet only: static files with no tenant data "
                    "that a browser loads without a key; the page calls every other route with the user's "
                    "key, through the Lambda authorizer.",
                )
        cloud_watch_role = self.rest_api.node.try_find_child("CloudWatchRole")
        if cloud_watch_role is not None:
            acknowledge(
                cloud_watch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role; "
                "AWS's managed policy is the documented, logs-only policy.",
            )


def _page_method_options(config: DeploymentConfig) -> dict[str, apigw.MethodDeploymentOptions]:
    """The page's open GETs, outside any key's usage plan, share one throttle across all their callers (one
    key's rate and burst), so anonymous traffic cannot run up the API function. Logs and metrics as the
    stage's: a method's own setting replaces the stage-wide one.
    """
    options = apigw.MethodDeploymentOptions(
        throttling_rate_limit=config.api_throttle_rate,
        throttling_burst_limit=config.api_throttle_burst,
        metrics_enabled=True,
        logging_level=apigw.MethodLoggingLevel.ERROR,
        data_trace_enabled=False,
    )
    return {f"/{PAGE_PATH}/GET": options, f"/{PAGE_PATH}/{{file}}/GET": options}


def _cors_headers(origins: Sequence[str]) -> dict[str, str]:
    """Errors the gateway answers itself (refused key, throttled) need CORS headers to reach a browser."""
    if not origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origins[0] if len(origins) == 1 else "*",
        "Access-Control-Allow-Headers": ",".join(CORS_HEADERS),
    }


def _access_log_format() -> apigw.AccessLogFormat:
    fields = {
        "requestId": apigw.AccessLogField.context_request_id(),
        "ip": apigw.AccessLogField.context_identity_source_ip(),
        "apiKeyId": apigw.AccessLogField.context_identity_api_key_id(),
        # Who called (never the key itself: its id and tenant, as the authorizer resolved them).
        "tenantId": apigw.AccessLogField.context_authorizer(CONTEXT_TENANT),
        "keyId": apigw.AccessLogField.context_authorizer(CONTEXT_KEY_ID),
        "authorizerLatency": apigw.AccessLogField.context_authorizer_integration_latency(),
        "authorizerStatus": apigw.AccessLogField.context_authorizer_status(),
        "requestTime": apigw.AccessLogField.context_request_time(),
        "httpMethod": apigw.AccessLogField.context_http_method(),
        "resourcePath": apigw.AccessLogField.context_resource_path(),
        "path": apigw.AccessLogField.context_path(),
        "status": apigw.AccessLogField.context_status(),
        "responseLength": apigw.AccessLogField.context_response_length(),
        "responseLatency": apigw.AccessLogField.context_response_latency(),
        "integrationLatency": apigw.AccessLogField.context_integration_latency(),
        "errorMessage": apigw.AccessLogField.context_error_message(),
        "xrayTraceId": apigw.AccessLogField.context_xray_trace_id(),
    }
    return apigw.AccessLogFormat.custom(json.dumps(fields))
