"""Synthesize the CDK app once per worker mode per test session; every infra test reads these assemblies.

No Docker and no AWS account: layer bundling is skipped (`layer_bundling=skip`), image assets are only staged,
and cdk-nag runs inside synthesis (an unacknowledged finding would fail the fixture).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Environment-agnostic stacks, whatever the machine's AWS settings say.
for _name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
    os.environ.pop(_name, None)

from infra_helpers import Assembly  # noqa: E402

from infra.app import build_app  # noqa: E402

# The optional features (alarm e-mail, CORS) are on in the ECS assembly, so both paths get synthesized.
LAMBDA_CONTEXT: dict[str, Any] = {"layer_bundling": "skip"}
ECS_CONTEXT: dict[str, Any] = {
    "layer_bundling": "skip",
    "worker": "ecs",
    "alarm_email": "ops@example.com",
    "cors_origins": "https://app.example.com",
    "ecs_max_tasks": "4",
}
DEV_CONTEXT: dict[str, Any] = {"layer_bundling": "skip", "stage": "dev"}


def _synthesize(context: dict[str, Any], outdir: Path) -> Assembly:
    app, config = build_app(context=context, outdir=str(outdir))
    cloud_assembly = app.synth()
    assembly = Assembly(config=config, outdir=outdir)
    for stack in cloud_assembly.stacks:
        assembly.templates[stack.stack_name] = stack.template
    return assembly


@pytest.fixture(scope="session")
def lambda_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return _synthesize(LAMBDA_CONTEXT, tmp_path_factory.mktemp("cdk-lambda"))


@pytest.fixture(scope="session")
def ecs_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return _synthesize(ECS_CONTEXT, tmp_path_factory.mktemp("cdk-ecs"))


@pytest.fixture(scope="session")
def dev_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return _synthesize(DEV_CONTEXT, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session", params=["lambda", "ecs", "dev"])
def any_app(request: pytest.FixtureRequest) -> Assembly:
    """Each assembly in turn, for checks every deployment must pass."""
    return request.getfixturevalue(f"{request.param}_app")
