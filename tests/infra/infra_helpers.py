"""Reading synthesized assemblies in tests: templates, resources, policies, assets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra import constants
from infra.config import DeploymentConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Assembly:
    """One synthesized app: its config, output directory and templates."""

    config: DeploymentConfig
    outdir: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stateful_name(self) -> str:
        return f"{self.config.project}-{self.config.stage}-{constants.STATEFUL_STACK_SUFFIX}"

    @property
    def service_name(self) -> str:
        return f"{self.config.project}-{self.config.stage}-{constants.SERVICE_STACK_SUFFIX}"

    @property
    def stateful(self) -> Template:
        return Template.from_json(self.templates[self.stateful_name])

    @property
    def service(self) -> Template:
        return Template.from_json(self.templates[self.service_name])

    def resources(self, stack: str, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == resource_type
        }

    def only(self, stack: str, resource_type: str) -> dict[str, Any]:
        found = self.resources(stack, resource_type)
        assert len(found) == 1, f"expected one {resource_type} in {stack}, found {sorted(found)}"
        return next(iter(found.values()))

    def assets(self, stack: str) -> Mapping[str, Any]:
        return json.loads((self.outdir / f"{stack}.assets.json").read_text())

    def template_paths(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def function_with_handler(assembly: Assembly, handler: str) -> dict[str, Any]:
    functions = [
        fn
        for fn in assembly.resources(assembly.service_name, "AWS::Lambda::Function").values()
        if fn["Properties"].get("Handler") == handler
    ]
    assert len(functions) == 1, f"expected one function with handler {handler}"
    return functions[0]


def logical_id_of(assembly: Assembly, stack: str, resource: dict[str, Any]) -> str:
    for logical_id, candidate in assembly.templates[stack]["Resources"].items():
        if candidate is resource:
            return logical_id
    raise KeyError("resource not in template")


def policy_statements_of_role(assembly: Assembly, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to a role (CDK's DefaultPolicy)."""
    statements: list[dict[str, Any]] = []
    for policy in assembly.resources(assembly.service_name, "AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def render(value: Any) -> str:
    """A compact string of any template fragment, for 'mentions' checks."""
    return json.dumps(value, sort_keys=True)


def methods_by_path(assembly: Assembly) -> dict[tuple[str, str], dict[str, Any]]:
    """The service stack's API methods keyed by (HTTP method, resource path), e.g. ("GET", "/ui/{file}")."""
    resources = assembly.resources(assembly.service_name, "AWS::ApiGateway::Resource")

    def path_of(reference: dict[str, Any]) -> str:
        if "Fn::GetAtt" in reference:  # the API's root resource
            return ""
        resource = resources[reference["Ref"]]["Properties"]
        return f"{path_of(resource['ParentId'])}/{resource['PathPart']}"

    methods = assembly.resources(assembly.service_name, "AWS::ApiGateway::Method").values()
    return {
        (m["Properties"]["HttpMethod"], path_of(m["Properties"]["ResourceId"]) or "/"): m["Properties"]
        for m in methods
    }
