# The project's front door. Every target installs what it needs into .venv on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= api,worker,infra,dev,cli
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONPATH := layers/common:functions/api:functions/worker:functions/task_events:functions/authorizer:functions/notifier:.

.PHONY: help install run test test-fast test-shifted image-test lint fmt bench soak synth deploy destroy clean

help:
	@echo "make run      the local stack: moto + API on http://127.0.0.1:8000 + worker + lifecycle consumer"
	@echo "make test     every test (unit, integration on moto, model, infra, end to end)"
	@echo "make test-shifted  the in-process tests with the clock 180 days ahead, then 180 days back"
	@echo "make lint     ruff, mypy, hadolint"
	@echo "make bench    inference benchmark; writes docs/BENCHMARKS.md"
	@echo "make synth    synthesize the CDK app into cdk.out (offline)"
	@echo "make deploy   deploy to the AWS account in your environment (needs Docker and credentials)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to 2.13.0 in pyproject.toml: an open range would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m local.stack

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not infra"

# No test may depend on today's date (tests/clock_shift.py). The shift cannot reach other processes: not e2e.
test-shifted: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e" --clock-shift-days=180
	$(BIN)/python -m pytest -m "not e2e" --clock-shift-days=-180

# Build the worker image (Dockerfile.inference, lambda-cpu) and run it here as Lambda and ECS run it, on moto:
# local/image_test.py, docs/DEPLOY.md. Needs a Docker daemon, or root to start one. E.g. IMAGE_TEST_ARGS=--clean
IMAGE_TEST_ARGS ?=
image-test: $(STAMP)
	$(BIN)/python -m local.image_test $(IMAGE_TEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common/tts_common functions/api/tts_api functions/task_events/tts_task_events functions/worker/tts_worker tts_cli \
		functions/authorizer/tts_authorizer functions/notifier/tts_notifier
	$(BIN)/mypy infra bench
	$(BIN)/hadolint Dockerfile.inference

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.run

# A fresh local stack under load and faults (docs/RELIABILITY.md); `-m bench.soak --quick` is shorter.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Fill the model store with each language's saved model and ONNX decoder export, where workers download it on
# first use: make models LANGUAGES=fin,eng,swh [MODEL_TEMPLATE=facebook/mms-tts-{language}]. The store is
# TTS_MODEL_STORE_BUCKET (else AUDIO_BUCKET_NAME) under TTS_MODEL_STORE_PREFIX (models/); AWS_* as usual.
.PHONY: models
models: $(STAMP)
	@test -n "$(LANGUAGES)" || { echo "usage: make models LANGUAGES=fin,eng,swh"; exit 2; }
	$(BIN)/python -m tts_worker.prefetch --to-store --languages "$(LANGUAGES)" \
		$(if $(MODEL_TEMPLATE),--template "$(MODEL_TEMPLATE)")

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# e.g. make deploy CDK_ARGS="-c worker=ecs -c alarm_email=ops@example.com" (docs/DEPLOY.md lists every key)
CDK_ARGS ?=

# Templates only (no layer bundling, no Docker), then cfn-lint over them.
synth: $(STAMP) node_modules/.package-lock.json
	npx cdk synth --quiet -c layer_bundling=skip $(CDK_ARGS)
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

deploy: $(STAMP) node_modules/.package-lock.json
	npx cdk deploy --all --require-approval broadening $(CDK_ARGS)

destroy: $(STAMP) node_modules/.package-lock.json
	npx cdk destroy --all $(CDK_ARGS)

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
