"""The CDK app, the only place that reads context or the environment. Run by the CDK CLI or by tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk

REPO_ROOT = Path(__file__).resolve().parent.parent
# tts_common's table schema is the one source of truth for the table's keys and indexes.
sys.path.insert(0, str(REPO_ROOT / "layers" / "common"))

from infra import constants  # noqa: E402
from infra.config import DeploymentConfig  # noqa: E402
from infra.nag import add_nag_checks  # noqa: E402
from infra.stacks.service import ServiceStack  # noqa: E402
from infra.stacks.stateful import StatefulStack  # noqa: E402

# CDK's own context key for which stacks get bundled; the CLI refuses `-c aws:...`, hence
# `layer_bundling=skip`.
BUNDLING_STACKS_KEY = "aws:cdk:bundling-stacks"


def cdk_json_context(repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """cdk.json's context (feature flags): the CLI passes it in; a plain `build_app()` must see it too."""
    return dict(json.loads((repo_root / "cdk.json").read_text(encoding="utf-8")).get("context", {}))


def build_app(
    *, context: dict[str, Any] | None = None, outdir: str | None = None, repo_root: Path = REPO_ROOT
) -> tuple[cdk.App, DeploymentConfig]:
    # Context given here yields to the CLI's (-c key=value, cdk.json), so `cdk synth` works the same way.
    app = cdk.App(context={**cdk_json_context(repo_root), **(context or {})}, outdir=outdir)
    config = DeploymentConfig.from_context(app.node.try_get_context)
    if config.layer_bundling == "skip":
        app.node.set_context(BUNDLING_STACKS_KEY, [])

    # Unset, the stacks are environment-agnostic; `cdk deploy` with credentials fills both in.
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    prefix = f"{config.project}-{config.stage}"
    stateful = StatefulStack(
        app,
        f"{prefix}-{constants.STATEFUL_STACK_SUFFIX}",
        config=config,
        env=env,
        description="Serverless TTS: tasks table, API key table and audio bucket (retained)",
    )
    service = ServiceStack(
        app,
        f"{prefix}-{constants.SERVICE_STACK_SUFFIX}",
        config=config,
        stateful_stack_name=stateful.stack_name,
        repo_root=repo_root,
        env=env,
        description=f"Serverless TTS: API, queues, task events, {config.worker} worker, monitoring",
    )
    service.add_stack_dependency(stateful)
    for stack in (stateful, service):
        cdk.Tags.of(stack).add("project", config.project)
        cdk.Tags.of(stack).add("stage", config.stage)
    add_nag_checks(app)
    return app, config


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
