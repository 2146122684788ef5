"""The Lambda REQUEST authorizer: a key presented as `x-api-key` or `Authorization: Bearer` → its tenant.

No identity sources and no result cache. API Gateway (REST) refuses a request before the authorizer runs
when any listed identity source is missing, so listing both headers would demand both; listing one would
refuse the other form; and caching needs at least one. Without a cache every request is decided afresh,
so a key revoked in the key table stops working at its next request (the table read is consistent). The
price is one authorizer invocation (a GetItem) per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants
from infra.capabilities.grants import grant_key_reads
from infra.capabilities.service_function import service_function
from infra.config import DeploymentConfig

# Caching would need an identity source (see above): every request is decided afresh.
RESULTS_CACHE_TTL = Duration.seconds(0)
# The key store's worst case is 2 x (0.5 + 1.0) s + 1 s backoff (tts_common.settings.KeyStoreSettings).
AUTHORIZER_TIMEOUT = Duration.seconds(6)
# On every request's path: more memory buys CPU for a shorter cold start.
AUTHORIZER_MEMORY_MB = 512


class KeyAuthorizer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        key_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = service_function(
            self,
            "Function",
            code=code,
            handler=constants.AUTHORIZER_HANDLER,
            layers=layers,
            environment=environment,
            timeout=AUTHORIZER_TIMEOUT,
            memory_size=AUTHORIZER_MEMORY_MB,
            log_retention_days=config.log_retention_days,
            description="TTS API key authorizer (key -> tenant)",
        )
        grant_key_reads(self.function, key_table)
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "Authorizer",
            handler=self.function,
            identity_sources=[],
            results_cache_ttl=RESULTS_CACHE_TTL,
        )
        # CDK writes an empty IdentitySource; absent is what API Gateway documents for an uncached authorizer.
        cfn_authorizer = self.authorizer.node.default_child
        assert isinstance(cfn_authorizer, apigw.CfnAuthorizer)
        cfn_authorizer.add_property_deletion_override("IdentitySource")
