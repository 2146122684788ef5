"""cdk-nag (AwsSolutions) wiring and the one way this app acknowledges a finding."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

MIN_REASON_CHARS = 30


def add_nag_checks(scope: IConstruct) -> None:
    """Run the AwsSolutions pack at synth; an unacknowledged finding makes synthesis fail (ValidationFailed).

    Acknowledgments are also written into the templates' metadata, so a reviewer sees each reason next to its
    resource.
    """
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope, write_suppressions_to_cloud_formation=True))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept one finding (e.g. `AwsSolutions-IAM5[Resource::*]`) on `scope` and below, with a reason."""
    if not rule.startswith("AwsSolutions-"):
        raise ValueError(f"not an AwsSolutions rule id: {rule}")
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"the reason for {rule} must say why in at least {MIN_REASON_CHARS} characters")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def finding_resource(scope: IConstruct, value: str) -> str:
    """How cdk-nag writes a (token) resource in a finding id, e.g. `<AWS::Partition>` or
    `{"Fn::...":...}/audio/*`.

    Mirrors cdk-nag's flattenCfnReference so an acknowledgment names the exact finding, tokens included.
    """
    return _flatten(Stack.of(scope).resolve(value))


def _flatten(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)
