"""The Lambda layer the zip functions share: tts_common and the third-party packages it and the API need."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.capabilities.service_function import ARCHITECTURE, RUNTIME
from infra.layer_bundling import common_layer_code, layer_requirements


class CommonLayer(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, repo_root: Path, source_dir: Path, bundling: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=common_layer_code(
                source_dir=source_dir,
                requirements=layer_requirements(repo_root / "pyproject.toml"),
                packages=("tts_common",),
                mode=bundling,
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="tts_common and its dependencies (pydantic, pynamodb, powertools, fastapi, mangum)",
        )
