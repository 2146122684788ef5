"""A deployment's API Gateway keys and CloudFormation outputs, for `tts-admin` (tts_common.admin).

On AWS the authorizer hands API Gateway the presented key as the usage identifier, so each tenant key is
also an API Gateway API key with the same value, bound to the usage plan: throttle and quota stay per key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.exceptions import ConfigurationError, DependencyUnavailable
from tts_common.tenancy import GATEWAY_KEY_NAME_PREFIX


def stack_outputs(cloudformation_client: Any, stacks: Iterable[str]) -> dict[str, str]:
    """Every output of the named stacks, by output key (a later stack's output wins)."""
    outputs: dict[str, str] = {}
    for stack in stacks:
        try:
            described = cloudformation_client.describe_stacks(StackName=stack)["Stacks"]
        except DEPENDENCY_ERRORS as exc:
            raise ConfigurationError(f"stack {stack!r} cannot be described: {exc}") from exc
        for item in described[0].get("Outputs", []):
            outputs[item["OutputKey"]] = item["OutputValue"]
    return outputs


def gateway_key_name(key_id: str) -> str:
    return f"{GATEWAY_KEY_NAME_PREFIX}{key_id}"


@dataclass(frozen=True)
class GatewayKeys:
    """The API Gateway API keys of one usage plan."""

    apigateway_client: Any
    usage_plan_id: str

    def add(self, *, key_id: str, tenant_id: str, value: str) -> str:
        """Create the API key whose value is the tenant's key and bind it to the usage plan; its id."""
        try:
            created = self.apigateway_client.create_api_key(
                name=gateway_key_name(key_id),
                description=f"tenant {tenant_id}",
                enabled=True,
                value=value,
                tags={"tenant": tenant_id, "key_id": key_id},
            )
            self.apigateway_client.create_usage_plan_key(
                usagePlanId=self.usage_plan_id, keyId=created["id"], keyType="API_KEY"
            )
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable(f"API Gateway refused the key: {type(exc).__name__}") from exc
        return str(created["id"])

    def remove(self, *, key_id: str) -> list[str]:
        """Delete the API keys named for this key (deleting one also unbinds it from the plan); their ids."""
        name = gateway_key_name(key_id)
        try:
            found = self.apigateway_client.get_api_keys(nameQuery=name, includeValues=False, limit=500)
            ids = [item["id"] for item in found.get("items", []) if item.get("name") == name]
            for gateway_id in ids:
                self.apigateway_client.delete_api_key(apiKey=gateway_id)
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable(f"API Gateway did not delete the key: {type(exc).__name__}") from exc
        return ids
