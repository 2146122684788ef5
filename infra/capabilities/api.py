"""The public API: API Gateway (REST) with API keys and a usage plan, proxying to the FastAPI function."""

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
from infra.capabilities.grants import grant_objects, grant_table_read_write
from infra.capabilities.service_function import log_group, service_function
from infra.config import DeploymentConfig
from infra.nag import acknowledge
from tts_common.domain import AUDIO_PREFIX, INPUTS_PREFIX

# API Gateway gives up on a REST integration after 29 s; the function stops before that.
API_TIMEOUT = Duration.seconds(28)
CORS_HEADERS = ["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"]


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
            binary_media_types=["audio/*"],
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=_access_log_format(),
            ),
        )
        # The generated `Endpoint` output is replaced by the app's own ApiUrl output.
        self.rest_api.node.try_remove_child("Endpoint")

        # Bodies are validated by the app (typed errors in its OpenAPI schema); the gateway checks parameters.
        validator = self.rest_api.add_request_validator(
            "ParameterValidator", validate_request_parameters=True, validate_request_body=False
        )
        integration = apigw.LambdaIntegration(self.function, proxy=True)
        methods = [
            self.rest_api.root.add_method(
                "ANY", integration, api_key_required=True, request_validator=validator
            ),
            self.rest_api.root.add_resource("{proxy+}").add_method(
                "ANY",
                integration,
                api_key_required=True,
                request_validator=validator,
                request_parameters={"method.request.path.proxy": True},
            ),
        ]
        if config.cors_origins:
            self._cors_on_gateway_errors(config.cors_origins)

        self.api_key = self.rest_api.add_api_key(
            "DefaultKey", description="Default client key (usage plan below)"
        )
        self.usage_plan = self.rest_api.add_usage_plan(
            "UsagePlan",
            description="Throttle and daily quota for every API key",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_throttle_rate, burst_limit=config.api_throttle_burst
            ),
            quota=apigw.QuotaSettings(limit=config.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)],
        )
        self.usage_plan.add_api_key(self.api_key)
        self._acknowledge(methods)

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

    def _cors_on_gateway_errors(self, origins: Sequence[str]) -> None:
        """Errors the gateway answers itself (missing key, throttled) need CORS headers to reach a browser."""
        origin = origins[0] if len(origins) == 1 else "*"
        headers = {
            "Access-Control-Allow-Origin": f"'{origin}'",
            "Access-Control-Allow-Headers": "'" + ",".join(CORS_HEADERS) + "'",
        }
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"Cors{response_type.response_type}", type=response_type, response_headers=headers
            )

    def _acknowledge(self, methods: Sequence[apigw.Method]) -> None:
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
            "No WAF by default: API keys with a usage plan (throttle and daily quota) bound abuse; "
            "accounts that mandate WAF attach a web ACL to the stage (docs/DEPLOY.md).",
        )
        for method in methods:
            cfn_method = method.node.default_child
            assert cfn_method is not None
            acknowledge(
                cfn_method,
                "AwsSolutions-APIG4",
                "Clients authenticate with API keys bound to a usage plan (x-api-key); "
                "the service has no user identities.",
            )
            acknowledge(
                cfn_method,
                "AwsSolutions-COG4",
                "No Cognito user pool: callers are machine clients holding API keys; "
                "there are no end users to sign in.",
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


def _access_log_format() -> apigw.AccessLogFormat:
    fields = {
        "requestId": apigw.AccessLogField.context_request_id(),
        "ip": apigw.AccessLogField.context_identity_source_ip(),
        "apiKeyId": apigw.AccessLogField.context_identity_api_key_id(),
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
