"""Dockerfile.inference without Docker: hadolint, and static checks that a build finds what it names."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from infra_helpers import REPO_ROOT, Assembly

from infra import constants
from infra.config import DeploymentConfig

pytestmark = pytest.mark.infra

DOCKERFILE = REPO_ROOT / constants.INFERENCE_DOCKERFILE
WORKER_SRC = REPO_ROOT / "functions" / "worker"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"(\S+)\s+AS\s+(\S+)", args, flags=re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            current = Stage(name=match.group(2), base=match.group(1))
            stages[current.name] = current
        elif current is None:
            if keyword == "ARG" and "=" in args:
                name, _, default = args.partition("=")
                global_args[name.strip()] = default.strip()
        else:
            current.instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def copy_sources(stage: Stage) -> list[str]:
    sources = []
    for args in stage.all("COPY"):
        if args.startswith("--from="):
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        sources.extend(parts[:-1])
    return sources


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_targets_exist_on_the_right_bases(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    global_args, stages = dockerfile
    assert stages[constants.LAMBDA_IMAGE_TARGET].base == "${PYTHON_BASE_IMAGE}"
    assert stages[constants.ECS_IMAGE_TARGET].base == "${CUDA_BASE_IMAGE}"
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+(\.\d+)?-\w+-ubuntu22\.04", global_args["CUDA_BASE_IMAGE"])


def test_every_copy_source_exists_and_is_in_the_build_context(
    dockerfile: tuple[dict[str, str], dict[str, Stage]], lambda_app: Assembly
) -> None:
    _, stages = dockerfile
    image = next(iter(lambda_app.assets(lambda_app.service_name)["dockerImages"].values()))["source"]
    staged_context = lambda_app.outdir / image["directory"]
    for stage in stages.values():
        for source in copy_sources(stage):
            assert (REPO_ROOT / source).exists(), f"{stage.name}: COPY {source} does not exist"
            # What CDK staged is what `docker build` will get (.dockerignore applied).
            assert (staged_context / source).exists(), f"{stage.name}: {source} is excluded by .dockerignore"


def test_lambda_target_runs_the_worker_handler(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    cmd = json.loads(stages[constants.LAMBDA_IMAGE_TARGET].all("CMD")[-1])
    assert cmd == [constants.WORKER_LAMBDA_HANDLER]
    module, _, function = constants.WORKER_LAMBDA_HANDLER.rpartition(".")
    source = WORKER_SRC / (module.replace(".", "/") + ".py")
    assert source.is_file(), f"{source} is missing"
    defined = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert function in defined


def test_ecs_target_runs_the_long_poll_loop(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    cmd = json.loads(stages[constants.ECS_IMAGE_TARGET].all("CMD")[-1])
    assert cmd == ["python", "-m", constants.WORKER_ECS_MODULE]
    source = WORKER_SRC / (constants.WORKER_ECS_MODULE.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assert any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body), (
        "the ECS entry must run as a module"
    )


def test_entry_modules_import(tmp_path: Path) -> None:
    # In a clean interpreter, as the image would: both entry points import without AWS or the model.
    code = (
        "import importlib; "
        f"m = importlib.import_module('{constants.WORKER_LAMBDA_HANDLER.rpartition('.')[0]}'); "
        f"assert callable(m.{constants.WORKER_LAMBDA_HANDLER.rpartition('.')[2]}); "
        f"e = importlib.import_module('{constants.WORKER_ECS_MODULE}'); assert callable(e.main); "
        "importlib.import_module('tts_worker.prefetch')"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "common"), str(WORKER_SRC)]),
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_model_is_baked_in_and_the_hub_is_off_at_run_time(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    global_args, stages = dockerfile
    assert global_args["TTS_MODELS"] == ",".join(DeploymentConfig().image_model_ids)
    assert global_args["MODELS_DIR"] == constants.IMAGE_MODELS_DIR
    assert (WORKER_SRC / "tts_worker" / "prefetch.py").is_file()
    for target in (constants.LAMBDA_IMAGE_TARGET, constants.ECS_IMAGE_TARGET):
        stage = stages[target]
        runs = " ".join(stage.all("RUN"))
        assert 'python -m tts_worker.prefetch "${MODELS_DIR}" --models "${TTS_MODELS}"' in runs
        # Built as root, run as another user (Lambda's, ECS's 10001); safetensors writes 0600 files.
        prefetch_run = next(r for r in stage.all("RUN") if "tts_worker.prefetch" in r)
        assert prefetch_run.endswith('chmod -R a+rX "${MODELS_DIR}"'), target
        env = " ".join(stage.all("ENV"))
        assert "HF_HUB_OFFLINE=1" in env
        # The worker's registry looks there first, by model_dir_name(model_id).
        assert "TTS_IMAGE_MODELS_DIR=${MODELS_DIR}" in env


def test_torch_is_the_pinned_version_cpu_only_for_lambda(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    global_args, stages = dockerfile
    worker_extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["worker"]
    assert f"torch=={global_args['TORCH_VERSION']}" in [r.replace(" ", "") for r in worker_extra]
    lambda_stage = stages[constants.LAMBDA_IMAGE_TARGET]
    lambda_runs = " ".join(lambda_stage.all("RUN"))
    # The torch source is a build argument (`make image-test` points it at a loopback index); a deploy
    # keeps the default, the PyTorch CPU index. The stage redeclares it, or it would be empty there.
    assert global_args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert "TORCH_INDEX_URL" in lambda_stage.all("ARG")
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in lambda_runs
    ecs_runs = " ".join(stages[constants.ECS_IMAGE_TARGET].all("RUN"))
    assert "download.pytorch.org/whl/cpu" not in ecs_runs
    assert "TORCH_INDEX_URL" not in ecs_runs


def test_requirements_step_yields_the_worker_dependencies(
    dockerfile: tuple[dict[str, str], dict[str, Stage]], tmp_path: Path
) -> None:
    # Run the requirements stage's own python one-liner on the real pyproject.toml.
    _, stages = dockerfile
    run = stages["requirements"].all("RUN")[0]
    match = re.fullmatch(r'python -c "(.*)" > /requirements\.txt', run)
    assert match, run
    (tmp_path / "pyproject.toml").write_bytes((REPO_ROOT / "pyproject.toml").read_bytes())
    result = subprocess.run(
        [sys.executable, "-c", match.group(1)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    requirements = result.stdout.split()
    assert any(r.startswith("transformers") for r in requirements)
    assert any(r.startswith("aws-lambda-powertools[tracer]") for r in requirements)
    assert not any(r.startswith("torch") for r in requirements)


def test_the_cpu_image_carries_the_decoder_export_and_the_gpu_image_does_not(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    lambda_runs = " ".join(stages[constants.LAMBDA_IMAGE_TARGET].all("RUN"))
    ecs_runs = " ".join(stages[constants.ECS_IMAGE_TARGET].all("RUN"))
    assert "tts_worker.prefetch" in lambda_runs
    assert "--no-onnx-decoder" not in lambda_runs  # the CPU worker's decoder runs on ONNX Runtime
    assert "--no-onnx-decoder" in ecs_runs
    # A missing export is written at start-up: Lambda's only writable place is /tmp.
    assert f"TTS_CACHE_DIR={constants.WORKER_CACHE_DIR}" in " ".join(
        stages[constants.LAMBDA_IMAGE_TARGET].all("ENV")
    )
    assert constants.WORKER_CACHE_DIR.startswith("/tmp/")


def test_the_lambda_image_can_install_the_manylinux_2_28_wheels_and_speaks_the_runtime_api(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    # torch 2.13 and onnxruntime publish manylinux_2_28 wheels only. AWS's python:3.11 Lambda base is Amazon
    # Linux 2 (glibc 2.26), where pip refuses them; Debian bookworm has glibc 2.36.
    global_args, stages = dockerfile
    base = global_args["PYTHON_BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-(slim-)?bookworm", base), base
    assert not any(stage.base.startswith("public.ecr.aws/lambda/python") for stage in stages.values())
    lambda_stage = stages[constants.LAMBDA_IMAGE_TARGET]
    # Without AWS's base image the runtime interface client is the entry point, pinned and installed.
    assert json.loads(lambda_stage.all("ENTRYPOINT")[-1]) == ["python", "-m", "awslambdaric"]
    assert '"awslambdaric==${AWSLAMBDARIC_VERSION}"' in " ".join(lambda_stage.all("RUN"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", global_args["AWSLAMBDARIC_VERSION"])
    # Lambda's file system is read-only outside /tmp: everything the worker may write goes there.
    env = " ".join(lambda_stage.all("ENV"))
    for variable in ("TTS_CACHE_DIR", "HF_HOME", "HOME"):
        assert re.search(rf"{variable}=/tmp(/|\s|$)", env), variable
