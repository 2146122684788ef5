"""How the shared Lambda layer is built: tts_common and its third-party packages, for Lambda's Python 3.11.

The same pip command runs in both places: locally (no Docker needed, pip fetches wheels built for Lambda's
platform) or inside the SAM build image when `layer_bundling=docker`. Third-party versions come from
pyproject.toml, the one place they are pinned.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

# Lambda's python3.11 runtime is Amazon Linux 2 (glibc 2.26): manylinux2014 (glibc 2.17) wheels are the newest
# that load.
PIP_PLATFORM_ARGS = (
    "--only-binary=:all:",
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.11",
)
# uvicorn only serves the API locally. boto3 stays: pynamodb brings its own botocore, which must match
# boto3's.
NOT_IN_LAYER = frozenset({"uvicorn"})
LAYER_EXTRAS = ("api",)
POWERTOOLS = "aws-lambda-powertools"


def layer_requirements(pyproject: Path) -> tuple[str, ...]:
    """The project's core dependencies and the API extra, without what only serves the API locally."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra in LAYER_EXTRAS:
        requirements.extend(project.get("optional-dependencies", {}).get(extra, []))
    return tuple(with_tracer_extra(r) for r in requirements if _distribution(r) not in NOT_IN_LAYER)


def with_tracer_extra(requirement: str) -> str:
    """Every function runs with X-Ray tracing on, and Powertools' Tracer then imports aws_xray_sdk."""
    if _distribution(requirement) != POWERTOOLS or "[" in requirement.split(";", 1)[0]:
        return requirement
    return requirement.replace(POWERTOOLS, f"{POWERTOOLS}[tracer]", 1)


def _distribution(requirement: str) -> str:
    name = requirement
    for stop in "<>=!~;[ (":
        name = name.split(stop, 1)[0]
    return name.strip().lower().replace("_", "-")


def pip_install_args(target: str, requirements: tuple[str, ...]) -> list[str]:
    return [
        "install",
        "--no-cache-dir",
        "--no-compile",
        "--target",
        target,
        *PIP_PLATFORM_ARGS,
        *requirements,
    ]


def compile_args(target: str) -> list[str]:
    """Byte-compile once at build time (/opt is read-only, so a cold start would compile every import).

    Hash-based .pyc files and a fixed hash seed keep the output identical from one bundling to the next.
    """
    return ["-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", target]


def layer_bundling_options(
    *, source_dir: Path, requirements: tuple[str, ...], packages: tuple[str, ...], mode: str
) -> BundlingOptions:
    """Bundle `packages` (folders of the asset source) and `requirements` into the layer's python/ folder."""
    docker_steps = [
        "python -m pip " + shlex.join(pip_install_args("/asset-output/python", requirements)),
        *(f"cp -R /asset-input/{shlex.quote(p)} /asset-output/python/" for p in packages),
        "PYTHONHASHSEED=0 python " + shlex.join(compile_args("/asset-output/python")),
    ]
    return BundlingOptions(
        image=lambda_.Runtime.PYTHON_3_11.bundling_image,
        platform="linux/amd64",
        command=["bash", "-c", " && ".join(docker_steps)],
        environment={"PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": "/tmp"},
        local=None
        if mode == "docker"
        else LocalPipBundling(source_dir=source_dir, requirements=requirements, packages=packages),
    )


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Bundle without Docker: pip fetches manylinux wheels for Lambda's platform, whatever this runs on."""

    def __init__(self, *, source_dir: Path, requirements: tuple[str, ...], packages: tuple[str, ...]) -> None:
        self._source_dir = source_dir
        self._requirements = requirements
        self._packages = packages

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        python_dir = Path(output_dir) / "python"
        command = [sys.executable, "-m", "pip", *pip_install_args(str(python_dir), self._requirements)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                "local layer bundling failed (pip could not fetch Lambda wheels); retry online, "
                "use -c layer_bundling=docker, or -c layer_bundling=skip for a template-only synth:\n"
                + result.stderr[-4000:]
            )
        for package in self._packages:
            shutil.copytree(
                self._source_dir / package, python_dir / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        subprocess.run(
            [sys.executable, *compile_args(str(python_dir))],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
        )
        return True


def common_layer_code(
    *, source_dir: Path, requirements: tuple[str, ...], packages: tuple[str, ...], mode: str
) -> lambda_.Code:
    """The layer's code asset: bundled (local pip or Docker) unless the app skips bundling."""
    options = layer_bundling_options(
        source_dir=source_dir, requirements=requirements, packages=packages, mode=mode
    )
    return lambda_.Code.from_asset(
        str(source_dir),
        bundling=options,
        exclude=["**/__pycache__", "**/*.pyc"],
    )
