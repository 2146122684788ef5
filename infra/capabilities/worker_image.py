"""The inference image, built from Dockerfile.inference at deploy time (synthesis only stages its context)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import aws_ecr_assets as ecr_assets

from infra import constants
from infra.config import DeploymentConfig


def image_asset_props(config: DeploymentConfig, *, repo_root: Path, target: str) -> dict[str, Any]:
    """Keyword arguments shared by DockerImageCode.from_image_asset and ContainerImage.from_asset.

    The build context is the repository root; .dockerignore (which CDK also applies when staging) lets in only
    what Dockerfile.inference copies, so the staged asset and its hash stay small.
    """
    return {
        "directory": str(repo_root),
        "file": constants.INFERENCE_DOCKERFILE,
        "target": target,
        # GPU instances and the Lambda function are x86_64, whatever machine builds the image.
        "platform": ecr_assets.Platform.LINUX_AMD64,
        # The image languages' models are baked in (Dockerfile.inference's TTS_MODELS build argument).
        "build_args": {"TTS_MODELS": ",".join(config.image_model_ids)},
    }
