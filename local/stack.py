"""`make run`: the whole service on one machine.

moto in server mode stands in for AWS on 127.0.0.1 (in this process); the API (uvicorn), the worker's
long-poll loop, the lifecycle consumer and the webhook notifier run as child processes with the same code
that runs on AWS.
A child that exits is restarted (with backoff, see local/supervisor.py); moto's state lives as long as this
process. Ctrl-C (or SIGTERM) stops every process this started, as does moto's server stopping.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from local.moto_patches import patch_moto
from local.provision import REGION, provision
from local.supervisor import Process, Supervisor
from tts_common.exceptions import InvalidInput

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(
    str(ROOT / p)
    for p in (
        "layers/common",
        "functions/api",
        "functions/worker",
        "functions/task_events",
        "functions/notifier",
        ".",
    )
)
# Each child's name in its logs (Powertools' `service`).
SERVICE_NAMES = {
    "api": "tts-api",
    "worker": "tts-worker",
    "task-events": "tts-task-events",
    "notifier": "tts-notifier",
}
MOTO_CHECK_EVERY_S = 5.0


# moto answers slower than DynamoDB: the API gets one attempt of up to 4 s per call here (0.5 s to connect),
# which still answers a typed 503 within 5 s when moto hangs, instead of its 1 s x 2 attempts on AWS.
WORKER_NICENESS = 10
LOCAL_API_TIMEOUTS = {"AWS_READ_TIMEOUT_S": "4", "AWS_MAX_ATTEMPTS": "1"}


# Worker processes (WORKER_PROCESSES): a long text's parts (fan-out) are synthesized by all of them.
DEFAULT_WORKER_PROCESSES = 2


def worker_names(env: dict[str, str]) -> list[str]:
    """`worker` alone, or `worker-1` ... `worker-N`."""
    count = max(1, int(env.get("WORKER_PROCESSES") or DEFAULT_WORKER_PROCESSES))
    return ["worker"] if count == 1 else [f"worker-{i}" for i in range(1, count + 1)]


def child_environment(env: dict[str, str], name: str) -> dict[str, str]:
    """A child's environment: the stack's, and its own service name for its logs. Each of several
    workers gets its id (WORKER_ID, in its start line) and an equal share of the cores for torch, unless
    TTS_NUM_THREADS is set (two processes each at every core's threads slow each other down many-fold)."""
    extra = {k: v for k, v in LOCAL_API_TIMEOUTS.items() if k not in env} if name == "api" else {}
    if name.startswith("worker-"):
        workers = len(worker_names(env))
        extra["WORKER_ID"] = name.removeprefix("worker-")
        if not env.get("TTS_NUM_THREADS"):
            extra["TTS_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        name = "worker"
    return {**env, **extra, "POWERTOOLS_SERVICE_NAME": SERVICE_NAMES[name]}


def local_models(env: dict[str, str], *, bucket: str, endpoint: str) -> str:
    """Unless TTS_LANGUAGES is set, serve three languages with distinct generated tiny models out of the model
    store on moto (the S3 path end to end, offline); returns what the banner says about the models."""
    if "TTS_LANGUAGES" in env:
        return f"{env['TTS_LANGUAGES']} ({env.get('TTS_MODEL_TEMPLATE', 'the default template')})"
    from local.models import LOCAL_LANGUAGES, LOCAL_TEMPLATE, publish_local_models, worker_environment

    generated = Path(env["TTS_CACHE_DIR"]) if env.get("TTS_CACHE_DIR") else None
    publish_local_models(bucket=bucket, endpoint_url=endpoint, generated_cache=generated)
    # A fresh download cache per run, so the worker really reads the store.
    downloads = Path(tempfile.mkdtemp(prefix="tts-local-models-"))
    atexit.register(shutil.rmtree, downloads, ignore_errors=True)
    env.update(worker_environment(bucket=bucket, cache_dir=downloads))
    return f"{', '.join(LOCAL_LANGUAGES)} ({LOCAL_TEMPLATE}, from the model store on moto; it is noise)"


# The development key's tenant, unless LOCAL_TENANT names another.
LOCAL_TENANT = "local"


def development_key(env: dict[str, str], *, endpoint: str | None, key_table: str) -> str:
    """The key `make run` prints: LOCAL_API_KEY when set (that value is the key), else a fresh one; stored
    hashed in the key table on moto for tenant LOCAL_TENANT (default `local`), as `tts-admin` would."""
    import boto3

    from tts_common.tenancy import ApiKeyStore

    store = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint),
        table_name=key_table,
    )
    key, _ = store.create(
        env.get("LOCAL_TENANT") or LOCAL_TENANT,
        "development key (make run)",
        datetime.now(UTC),
        key=env.get("LOCAL_API_KEY") or None,
    )
    return key


def _wait_for(url: str, *, timeout_s: float, procs: dict[str, Process | None]) -> None:
    """Wait for the API; a child that exits during start-up is a configuration error: fail fast."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def _moto_problem(moto: object, host: str, port: int, *, probe: bool) -> str | None:
    """Why moto's server (a thread of this process) can no longer serve, or None while it can."""
    thread = getattr(moto, "_thread", None)
    if thread is None or not thread.is_alive():
        return "its server thread has stopped"
    if probe:
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            return f"its port {port} does not accept connections ({exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "5050")))
    args = parser.parse_args(argv)

    patch_moto()
    # moto's server logs every request; the service's own logs are what a developer wants to read.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=args.host, port=args.moto_port, verbose=False)
    moto.start()
    endpoint = f"http://{args.host}:{args.moto_port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    # Short visibility timeouts so that a killed worker's job comes back quickly on one machine.
    resources = provision(
        endpoint_url=endpoint, jobs_visibility_timeout_s=120, events_visibility_timeout_s=30
    )

    env = {
        **os.environ,
        **resources.environment(),
        "EVENTS_QUEUE_URL": resources.events_queue_url,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "PYTHONPATH": PYTHONPATH,
        "PYTHONUNBUFFERED": "1",
        "VISIBILITY_TIMEOUT_S": "120",
        "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTTS"),
        "POWERTOOLS_DEV": os.environ.get("POWERTOOLS_DEV", "false"),
    }
    models = local_models(env, bucket=resources.bucket_name, endpoint=endpoint)
    try:
        api_key = development_key(env, endpoint=endpoint, key_table=resources.key_table_name)
    except InvalidInput as exc:
        print(f"LOCAL_API_KEY: {exc.message}", file=sys.stderr)
        moto.stop()
        return 2
    env.setdefault("SWEEP_EVERY_S", "30")
    # A shorter long-poll than on ECS, so that Ctrl-C stops the worker within seconds.
    env.setdefault("POLL_WAIT_S", "5")
    python = sys.executable
    commands = {
        "api": [
            python,
            "-m",
            "uvicorn",
            "tts_api.app:app",
            "--host",
            args.host,
            "--port",
            str(args.api_port),
            "--log-level",
            "warning",
        ],
        **{name: [python, "-m", "tts_worker.ecs_loop"] for name in worker_names(env)},
        "task-events": [python, "-m", "tts_task_events.poller"],
        # The webhook notifier. WEBHOOK_ALLOW_LOOPBACK (default off) lets callbacks reach this machine.
        "notifier": [python, "-m", "tts_notifier.poller"],
    }

    def spawner(name: str) -> Callable[[], Process]:
        child_env = child_environment(env, name)
        # On AWS the worker never shares a CPU with the API; on one machine it runs at a lower priority, so a
        # synthesis backlog does not slow every request down.
        niceness = WORKER_NICENESS if name.startswith("worker") else 0
        return lambda: subprocess.Popen(
            commands[name],
            env=child_env,
            cwd=ROOT,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )

    supervisor = Supervisor({name: spawner(name) for name in commands})
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    api_url = f"http://{args.host}:{args.api_port}"
    key_note = f"tenant {env.get('LOCAL_TENANT') or LOCAL_TENANT}; " + (
        "LOCAL_API_KEY" if env.get("LOCAL_API_KEY") else "a new one each run; set LOCAL_API_KEY to keep one"
    )
    try:
        supervisor.start()
        _wait_for(f"{api_url}/health", timeout_s=60, procs=supervisor.processes())
        print(
            f"\nServerless TTS local stack is up\n"
            f"  API:        {api_url}   (docs: {api_url}/docs)\n"
            f"  page:       {api_url}/ui\n"
            f"  AWS (moto): {endpoint}\n"
            f"  languages:  {models}   device: {env.get('TTS_DEVICE', 'auto')}\n"
            f"  API key:    {api_key}   ({key_note})\n"
            f"  try:        curl -s -X POST {api_url}/api/v1/tts/convert -H 'x-api-key: {api_key}' "
            f"-H 'content-type: application/json' "
            f'-d \'{{"text": "Hyvää huomenta"}}\'\n'
            f"  more keys:  tts-admin --local --endpoint-url {endpoint} keys create --tenant acme\n"
            f"  webhooks:   tts-admin --local --endpoint-url {endpoint} webhooks secret --tenant "
            f"{env.get('LOCAL_TENANT') or LOCAL_TENANT}   (callbacks to this machine: "
            f"WEBHOOK_ALLOW_LOOPBACK={env.get('WEBHOOK_ALLOW_LOOPBACK', 'false')})\n"
            f"  CLI:        TTS_API_URL={api_url} TTS_API_KEY={api_key} "
            f"tts say 'Hyvää huomenta' -o aamu.wav\n"
            f"A child that exits is restarted; Ctrl-C stops everything.\n",
            flush=True,
        )
        next_probe = time.monotonic() + MOTO_CHECK_EVERY_S
        while not stopping:
            supervisor.check()
            probe = time.monotonic() >= next_probe
            if probe:
                next_probe = time.monotonic() + MOTO_CHECK_EVERY_S
            problem = _moto_problem(moto, args.host, args.moto_port, probe=probe)
            if problem is not None:
                print(f"moto stopped ({problem}); stopping the stack", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"local stack failed to start: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop(timeout_s=15)
        if _moto_problem(moto, args.host, args.moto_port, probe=False) is None:
            moto.stop()
        print("local stack stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
