"""What a platform team runs before deploying: cfn-lint on every template, cdk-nag with reasons."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from infra_helpers import Assembly

from infra.nag import MIN_REASON_CHARS, acknowledge, add_nag_checks

pytestmark = pytest.mark.infra

# The only cfn-lint finding tolerated: W3005 on the DependsOn CDK adds from a function to its role's policy.
ROLE_DEPENDENCY = re.compile(r"'\w*(ServiceRole|Role)\w*' dependency already enforced")

# Every rule this app acknowledges; a new one needs a deliberate change here (and a reason in the code).
ACKNOWLEDGED_RULES = {
    "AwsSolutions-S1",  # the access-log bucket itself
    "AwsSolutions-APIG2",  # bodies validated by the app
    "AwsSolutions-APIG3",  # no WAF by default
    "AwsSolutions-APIG4",  # API keys, no user identities
    "AwsSolutions-COG4",  # no Cognito
    "AwsSolutions-IAM4",  # AWS-managed logging policies
    "AwsSolutions-IAM5",  # per-task object prefixes, index/*, X-Ray, ECS agent
    "AwsSolutions-L1",  # Python 3.11 pinned project-wide
    "AwsSolutions-ECS2",  # non-secret environment
    "AwsSolutions-AS3",  # ECS managed scaling drives the group
}


def cfn_lint(paths: list[str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", "--", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit codes are bit flags (2 error, 4 warning, 8 informational); 1 means cfn-lint itself failed.
    assert result.returncode & 1 == 0, result.stderr
    return json.loads(result.stdout or "[]")


def test_cfn_lint_finds_nothing_but_cdk_role_dependencies(any_app: Assembly) -> None:
    findings = cfn_lint([str(p) for p in any_app.template_paths()])
    unexpected = [
        f"{f['Rule']['Id']} {f['Message']} ({f['Filename']})"
        for f in findings
        if not (f["Rule"]["Id"] == "W3005" and ROLE_DEPENDENCY.search(f["Message"]))
    ]
    assert not unexpected, "\n".join(unexpected)


def test_cdk_nag_left_no_finding_unacknowledged(any_app: Assembly) -> None:
    # Synthesis would have raised ValidationFailed; the report it writes must be empty too.
    report = json.loads((any_app.outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert not violations


def acknowledgments(app: Assembly) -> list[dict[str, str]]:
    found = []
    for template in app.templates.values():
        for resource in template["Resources"].values():
            found.extend(resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []))
    return found


def test_every_acknowledgment_names_its_rule_and_a_reason(any_app: Assembly) -> None:
    acks = acknowledgments(any_app)
    assert acks, (
        "cdk-nag's acknowledgments are written to the templates (write_suppressions_to_cloud_formation)"
    )
    for ack in acks:
        if ack["id"].startswith("CloudFormation-Validate::"):
            continue  # CDK's own, on the VPC's subnets
        rule = ack["id"].split("[", 1)[0]
        assert rule in ACKNOWLEDGED_RULES, f"unexpected acknowledgment {ack['id']}"
        assert len(ack["reason"].strip()) >= MIN_REASON_CHARS, ack


def test_wildcard_acknowledgments_name_the_exact_resource(lambda_app: Assembly) -> None:
    iam5 = {ack["id"] for ack in acknowledgments(lambda_app) if ack["id"].startswith("AwsSolutions-IAM5")}
    assert "AwsSolutions-IAM5[Resource::*]" in iam5  # X-Ray only
    scoped = iam5 - {"AwsSolutions-IAM5[Resource::*]"}
    assert scoped
    prefixes = (
        "/audio/*]",
        "/audio/*.polly-*]",  # the API's filtered speech marks (infra.capabilities.polly_credentials)
        "/inputs/*]",
        "/parts/*]",  # a long text's parts (fan-out), keyed per task
        f"/{lambda_app.config.model_store_prefix}*]",
        "/index/*]",
    )
    assert all(ack.endswith(prefixes) for ack in scoped), scoped


def test_an_unacknowledged_finding_fails_synthesis(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Given the app's nag wiring and a bucket without access logs or TLS enforcement
    app = App(outdir=str(tmp_path_factory.mktemp("nag-negative")))
    s3.Bucket(Stack(app, "Offender"), "Bucket")
    add_nag_checks(app)
    # When synthesized / Then it fails
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_an_acknowledgment_needs_a_real_reason() -> None:
    stack = Stack(App(), "Scratch")
    with pytest.raises(ValueError, match="reason"):
        acknowledge(stack, "AwsSolutions-S1", "because")
    with pytest.raises(ValueError, match="AwsSolutions"):
        acknowledge(stack, "S1", "A long enough reason that still names no rule pack at all.")
