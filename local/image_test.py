"""`make image-test`: build the worker image from Dockerfile.inference and run it here, as Lambda and ECS do.

1. Docker: the daemon that answers, or `dockerd` started here (stopped again at the end). A daemon that
   will not start fails the run.
2. The base. No container registry is reachable here, so the official `python:3.11-slim-bookworm` cannot be
   pulled: a stand-in is made from Debian (debootstrap --variant=minbase, `docker import`, then
   local/image_base/Dockerfile, whose header lists what differs) and passed as PYTHON_BASE_IMAGE.
   `--python-base IMAGE` uses another base instead (the official one where a registry is reachable).
3. The `lambda-cpu` target, built as `cdk deploy` builds it (infra/capabilities/worker_image.py: file,
   target, build args; the CDK configuration's default language's model is tiny-random unless --context
   says otherwise), so the prefetch, the decoder's ONNX export and the chmod all run. torch comes from
   TORCH_INDEX_URL: a loopback index serving this machine's copy of the CPU wheel that the PyTorch CPU index
   serves (download.pytorch.org is not reachable here), sending every other project on to PyPI. Docker's
   classic builder (DOCKER_BUILDKIT=0): BuildKit would fetch the `# syntax=` frontend from a registry.
4. Lambda: the image's own ENTRYPOINT and CMD (awslambdaric) against a Runtime API served by this script,
   with a read-only root file system, /tmp a tmpfs, a non-root uid, the function's memory, and the
   environment the CDK app sets (infra/capabilities/environment.py) plus AWS_ENDPOINT_URL, pointing at moto
   on 127.0.0.1 (provisioned by local/provision.py). Conversions are submitted to the API's own app (in this
   process), and its jobs handed over as the SQS event source does: a cold invocation, then a warm one.
   Each task's lifecycle events must end done, its audio be in the bucket as the done event describes it,
   and the worker must not have re-made in /tmp the decoder export the image carries.
5. ECS: `python -m tts_worker.ecs_loop` from the same image (uid 10001, as the ecs-gpu target runs) against
   the same moto: a conversion gets done, then `docker stop` ends the loop with status 0 within the task's
   stop timeout.
6. The report: image size, layer sizes (`docker history`), package versions that differ from .venv, and
   the cold start inside the container (init: container, runtime client and handler import; the first
   invocation: torch import, model load, warm-up synthesis, the job; then a warm invocation).

The `ecs-gpu` target cannot be built here: its base (`nvidia/cuda`, Ubuntu) comes from a registry, and its
torch is the CUDA build. tests/infra/test_infra_dockerfile.py checks it statically.

Containers this starts are removed at the end; images are kept for the next run (a warm build) unless
--clean. Logs and a JSON report go to --work-dir. Exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile.inference"
BASE_DOCKERFILE = ROOT / "local" / "image_base" / "Dockerfile"

LABEL = "serverless-tts.image-test"  # on the stand-in base, so on everything built from it
RUN_LABEL = "serverless-tts.image-test.run"  # on each container: the pid of the run that started it
ROOTFS_IMAGE = "serverless-tts-image-test/bookworm:minbase"
STANDIN_IMAGE = "serverless-tts-image-test/python:3.11-slim-bookworm"
WORKER_REPOSITORY = "serverless-tts-image-test/worker"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Fixed, so that the torch layer's cache key (its RUN line with TORCH_INDEX_URL) is the same on every run.
TORCH_INDEX_PORT = 47615
PYPI_SIMPLE = "https://pypi.org/simple/"

# Lambda runs a container image as a non-root user (sbx_user1051: uid 993) with only /tmp writable (512 MB
# by default); the ecs-gpu target runs as 10001 (its USER).
LAMBDA_USER = "993:990"
ECS_USER = "10001:10001"
LAMBDA_TMPFS = "/tmp:rw,exec,nosuid,nodev,size=512m,mode=1777"
FUNCTION_NAME = "serverless-tts-image-test-worker"
REGION = "us-east-1"
ACCOUNT = "123456789012"

BUILD_TIMEOUT_S = 45 * 60
DEBOOTSTRAP_TIMEOUT_S = 15 * 60
START_TIMEOUT_S = 180
JOB_TIMEOUT_S = 300

TEXTS = (
    "Hyvää huomenta, tämä on kuvan ensimmäinen testi.",
    "Kissa istui ikkunalaudalla ja katseli lintuja.",
    "Tämä työ kulkee jonon kautta pitkään kyselevälle työntekijälle.",
)

_STARTED = time.monotonic()


class Failure(Exception):
    """A check failed or a step could not run: the run ends with a non-zero status."""


def say(message: str) -> None:
    print(f"[image-test {time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- docker --------------------------------------------------------------------------------------------------


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except subprocess.TimeoutExpired as exc:
        raise Failure(f"`docker {' '.join(args[:2])}` did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise Failure(
            f"`docker {' '.join(args[:2])}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result


def daemon_answers() -> bool:
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def _start_dockerd(dockerd: str, driver: str | None, log_path: Path) -> subprocess.Popen[bytes] | None:
    command = [dockerd, "--iptables=false", "--bridge=none"]
    if driver:
        command.append(f"--storage-driver={driver}")
    say(f"starting {' '.join(command[1:])} (log: {log_path})")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            say(f"dockerd exited with {proc.returncode}: " + " | ".join(tail))
            return None
        if daemon_answers():
            return proc
        time.sleep(0.5)
    _stop_dockerd(proc)
    say("dockerd did not answer within 60 s")
    return None


def _stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def docker_daemon(work: Path, storage_driver: str | None) -> Iterator[dict[str, str]]:
    """The daemon that answers, or one started here (and stopped on the way out)."""
    if shutil.which("docker") is None:
        raise Failure("no docker CLI: apt-get install -y docker.io")
    if daemon_answers():
        info = docker_info()
        say(f"using the Docker daemon that answers ({info['version']}, {info['driver']})")
        yield {**info, "started_here": "no"}
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise Failure("no Docker daemon answers and there is no dockerd: apt-get install -y docker.io")
    if os.geteuid() != 0:
        raise Failure("no Docker daemon answers, and starting dockerd needs root")
    # The daemon's own choice first (overlay2 where the kernel allows it), then vfs, which works anywhere.
    proc = None
    for driver in [storage_driver] if storage_driver else [None, "vfs"]:
        proc = _start_dockerd(dockerd, driver, work / "dockerd.log")
        if proc is not None:
            break
    if proc is None:
        raise Failure(f"dockerd did not start (see {work / 'dockerd.log'})")
    try:
        info = docker_info()
        say(f"dockerd {info['version']} is up (pid {proc.pid}, storage driver {info['driver']})")
        yield {**info, "started_here": "yes"}
    finally:
        say(f"stopping the dockerd this run started (pid {proc.pid})")
        _stop_dockerd(proc)


def docker_info() -> dict[str, str]:
    out = docker("info", "--format", "{{.ServerVersion}}\t{{.Driver}}\t{{.DockerRootDir}}").stdout.strip()
    version, driver, root = [*out.split("\t"), "", "", ""][:3]
    return {"version": version, "driver": driver, "root": root}


def remove_stale_containers() -> None:
    """Containers left by an earlier run that was killed (its pid is gone)."""
    out = docker(
        "ps", "-a", "--filter", f"label={RUN_LABEL}", "--format", f'{{{{.ID}}}} {{{{.Label "{RUN_LABEL}"}}}}'
    ).stdout
    for line in out.splitlines():
        cid, _, pid = line.partition(" ")
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            say(f"removing container {cid} left by an earlier run (pid {pid})")
            docker("rm", "-f", cid, check=False)


class Containers:
    """Every container this run starts, removed at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self, role: str) -> str:
        name = f"serverless-tts-image-test-{role}-{os.getpid()}"
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        for name in self.names:
            docker("rm", "-f", name, check=False, timeout=60)
        self.names.clear()


def run_build(args: Sequence[str], log_path: Path, *, timeout_s: float) -> tuple[float, int, int]:
    """`docker build` with the classic builder (a failed step's container removed too); a line per finished
    step. Returns (seconds, steps, cached)."""
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    steps = cached = 0
    current: str | None = None
    step_started = started
    step_cached = False

    def finish_step() -> None:
        nonlocal cached
        if current is not None:
            cached += step_cached
            took = time.monotonic() - step_started
            print(f"    {took:6.1f} s  {current[:96]}{'  (cache)' if step_cached else ''}", flush=True)

    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            ["docker", "build", "--force-rm", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if line.startswith("Step "):
                    finish_step()
                    steps += 1
                    current, step_started, step_cached = " ".join(line.split()), time.monotonic(), False
                elif "Using cache" in line:
                    step_cached = True
            proc.wait()
            finish_step()
        finally:
            timer.cancel()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        lines = [
            re.sub(r"\x1b\[[0-9;]*m|\[\d+m", "", line)
            for line in log_path.read_text(errors="replace").splitlines()
        ]
        errors = [line.strip() for line in lines if re.match(r"\s*([\w.]+(Error|Exception)\b|E: )", line)]
        why = "timed out" if seconds >= timeout_s else f"exited with {proc.returncode}"
        where = f" at {current[:80]}" if current else ""
        cause = f": {errors[-1]}" if errors else ""
        tail = "\n".join(lines[-40:])
        raise Failure(f"docker build {why}{where}{cause} (full log: {log_path})\n{tail}")
    return seconds, steps, cached


# -- the base ------------------------------------------------------------------------------------------------


def make_rootfs_image(work: Path) -> float:
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise Failure("making the stand-in base needs debootstrap: apt-get install -y debootstrap")
    if os.geteuid() != 0:
        raise Failure("debootstrap needs root")
    started = time.monotonic()
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
    log_path = work / "debootstrap.log"
    try:
        say(f"debootstrap --variant=minbase {DEBIAN_SUITE} (log: {log_path})")
        with log_path.open("w") as log:
            try:
                result = subprocess.run(
                    [debootstrap, "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=DEBOOTSTRAP_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise Failure(f"debootstrap did not finish within {DEBOOTSTRAP_TIMEOUT_S} s") from exc
        if result.returncode != 0:
            raise Failure(f"debootstrap failed ({result.returncode}); see {log_path}")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                ["docker", "import", "-", ROOTFS_IMAGE],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=60)
        if imported.returncode != 0 or tar.returncode != 0:
            raise Failure(f"docker import failed: {imported.stderr.strip()[-1000:]}")
    finally:
        remove_rootfs(rootfs)
    return time.monotonic() - started


def remove_rootfs(rootfs: Path) -> None:
    """Delete a debootstrap target, unmounting first what a failed debootstrap may have left mounted in it
    (proc, sysfs): never delete through a mount."""
    prefix = f"{rootfs.resolve()}/"
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if len(line.split()) > 1
    ]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True, timeout=60)
    left = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if f" {prefix}" in line]
    if left:
        say(f"left {rootfs} in place: still mounted there: {', '.join(left)}")
        return
    shutil.rmtree(rootfs, ignore_errors=True)


def ensure_base(args: argparse.Namespace, work: Path, report: dict[str, Any]) -> str:
    if args.python_base:
        if not image_exists(args.python_base):
            say(f"pulling {args.python_base}")
            docker("pull", args.python_base, timeout=900)
        report["base"] = {"image": args.python_base, "stand_in": False}
        return str(args.python_base)
    timings: dict[str, float] = {}
    if image_exists(STANDIN_IMAGE) and not args.rebuild_base:
        say(f"stand-in base {STANDIN_IMAGE} is there")
    else:
        if args.rebuild_base or not image_exists(ROOTFS_IMAGE):
            timings["debootstrap_import_s"] = round(make_rootfs_image(work), 1)
        if not HOST_CA_BUNDLE.is_file():
            raise Failure(f"{HOST_CA_BUNDLE} is missing: the stand-in's pip trusts this machine's CA bundle")
        say(f"building the stand-in base {STANDIN_IMAGE} (local/image_base/Dockerfile)")
        with tempfile.TemporaryDirectory(dir=work) as context:
            shutil.copy(BASE_DOCKERFILE, Path(context) / "Dockerfile")
            shutil.copy(HOST_CA_BUNDLE, Path(context) / "host-ca-certificates.crt")
            build_args = ["--build-arg", f"DEBIAN_ROOTFS_IMAGE={ROOTFS_IMAGE}", "-t", STANDIN_IMAGE]
            seconds, _, _ = run_build(
                ["--network", "host", *build_args, context],
                work / "build-base.log",
                timeout_s=BUILD_TIMEOUT_S,
            )
        timings["stand_in_build_s"] = round(seconds, 1)
    report["base"] = {"image": STANDIN_IMAGE, "stand_in": True, **timings}
    return STANDIN_IMAGE


# -- the torch index -----------------------------------------------------------------------------------------


def dockerfile_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    if not match:
        raise Failure(f"Dockerfile.inference has no default for ARG {name}")
    return match.group(1)


def find_torch_wheel(dirs: Sequence[Path], version: str) -> Path:
    pattern = f"torch-{version}+cpu-cp311-cp311-*linux*_x86_64.whl"
    for directory in dirs:
        found = sorted(directory.glob(pattern))
        if found:
            return found[-1]
    raise Failure(
        f"no {pattern} in {', '.join(map(str, dirs))}: pass --wheels-dir, or --torch-index-url "
        "https://download.pytorch.org/whl/cpu where that index is reachable"
    )


class TorchIndex:
    """A PEP 503 index on 127.0.0.1 like the PyTorch CPU index: torch is the local CPU wheel, and every other
    project (torch's dependencies) is sent on to PyPI."""

    def __init__(self, wheel: Path, port: int) -> None:
        digest = hashlib.sha256()
        with wheel.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        page = (
            f'<!DOCTYPE html><html><body><a href="/files/{wheel.name}#sha256={digest.hexdigest()}" '
            f'data-requires-python="&gt;=3.10">{wheel.name}</a></body></html>'
        ).encode()
        served = wheel

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                if path.rstrip("/") == "/simple/torch":
                    self._send(200, page, "text/html")
                elif path.startswith("/simple/") and path.count("/") >= 2:
                    self.send_response(302)
                    self.send_header("Location", PYPI_SIMPLE + path[len("/simple/") :])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == f"/files/{served.name}":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(served.stat().st_size))
                    self.end_headers()
                    with served.open("rb") as f:
                        shutil.copyfileobj(f, self.wfile, 1 << 20)
                else:
                    self._send(404, b"not here", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError:
            say(f"port {port} is taken: the torch layer will not come from the build cache this time")
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="torch-index", daemon=True)

    def __enter__(self) -> TorchIndex:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Lambda's Runtime API ------------------------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    event: bytes
    timeout_s: float
    queued_at: float = field(default_factory=time.monotonic)
    taken_at: float | None = None
    finished_at: float | None = None
    response: bytes | None = None
    error: bytes | None = None
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def duration_s(self) -> float:
        assert self.taken_at is not None
        assert self.finished_at is not None
        return self.finished_at - self.taken_at


class RuntimeApi:
    """The Lambda Runtime API that awslambdaric speaks: next, response, error, init/error
    (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), one invocation at a time."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.first_next_at: float | None = None
        self.init_error: bytes | None = None
        self.stopping = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path != f"{api.PREFIX}/invocation/next":
                    self._reply(404)
                    return
                if api.first_next_at is None:
                    api.first_next_at = time.monotonic()
                while not api.stopping.is_set():
                    try:
                        invocation = api.pending.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    invocation.taken_at = time.monotonic()
                    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
                    trace = f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1"
                    self._reply(
                        200,
                        invocation.event,
                        {
                            "Content-Type": "application/json",
                            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                            "Lambda-Runtime-Deadline-Ms": str(
                                int((time.time() + invocation.timeout_s) * 1000)
                            ),
                            "Lambda-Runtime-Invoked-Function-Arn": (
                                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
                            ),
                            "Lambda-Runtime-Trace-Id": trace,
                        },
                    )
                    return
                self.close_connection = True

            def do_POST(self) -> None:
                body = self._body()
                match = re.fullmatch(rf"{api.PREFIX}/invocation/([^/]+)/(response|error)", self.path)
                if self.path == f"{api.PREFIX}/init/error":
                    api.init_error = body
                    self._reply(202, b'{"status":"OK"}')
                elif match and match.group(1) in api.invocations:
                    invocation = api.invocations[match.group(1)]
                    if match.group(2) == "response":
                        invocation.response = body
                    else:
                        invocation.error = body
                        invocation.error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    invocation.finished_at = time.monotonic()
                    invocation.done.set()
                    self._reply(202, b'{"status":"OK"}')
                else:
                    self._reply(404)

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="runtime-api", daemon=True)

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def invoke(self, event: dict[str, Any], *, timeout_s: float, alive: Any) -> Invocation:
        invocation = Invocation(
            request_id=str(uuid.uuid4()), event=json.dumps(event).encode(), timeout_s=timeout_s
        )
        self.invocations[invocation.request_id] = invocation
        self.pending.put(invocation)
        deadline = time.monotonic() + timeout_s
        while not invocation.done.wait(1.0):
            if time.monotonic() > deadline:
                raise Failure(f"the invocation did not finish within {timeout_s:.0f} s")
            if not alive():
                raise Failure("the function's container exited during an invocation")
        return invocation


class XRaySink:
    """A UDP port standing in for the X-Ray daemon: counts the segments the function's tracer sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self.segments: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="xray-sink", daemon=True)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            _, _, document = data.partition(b"\n")
            with contextlib.suppress(ValueError):
                self.segments.append(json.loads(document))

    def __enter__(self) -> XRaySink:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# -- moto, jobs, checks --------------------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    from local.moto_patches import patch_moto

    patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class Aws:
    endpoint: str
    resources: Any
    config: Any
    _api: Any = None

    def client(self, name: str) -> Any:
        import boto3

        return boto3.client(name, region_name=REGION, endpoint_url=self.endpoint)

    def service_environment(self) -> dict[str, str]:
        """What the CDK app sets on every function (infra/capabilities/environment.py), with moto's names,
        plus the endpoint and fake credentials."""
        from infra.capabilities.environment import service_environment

        env = service_environment(
            self.config,
            table_name=self.resources.table_name,
            bucket_name=self.resources.bucket_name,
            jobs_queue=SimpleNamespace(queue_url=self.resources.jobs_queue_url),
            topic=SimpleNamespace(topic_arn=self.resources.events_topic_arn),
        )
        return {
            **env,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "image-test",
            "AWS_SECRET_ACCESS_KEY": "image-test",
            "AWS_SESSION_TOKEN": "image-test",
        }

    def worker_environment(self) -> dict[str, str]:
        """The worker's: the service's plus worker_environment(device="cpu"), as on the Lambda function."""
        from infra.capabilities.environment import worker_environment

        return {**self.service_environment(), **worker_environment(self.config, device="cpu")}

    def submit(self, text: str) -> str:
        """POST /api/v1/tts/convert to the API's own app in this process (as `make run` serves it): the
        task's record, the job on the jobs queue and the queued event are the API's. Returns the task id."""
        if self._api is None:
            # On AWS the authorizer resolves the key; in this process the API resolves it itself from the
            # key table (as on the local stack), for a key made as `tts-admin keys create` makes one.
            os.environ.update({**self.service_environment(), "TTS_KEY_TABLE": self.resources.key_table_name})
            from datetime import UTC, datetime

            from fastapi.testclient import TestClient

            from tts_api.app import app
            from tts_common.tenancy import API_KEY_HEADER, ApiKeyStore

            table = self.resources.key_table_name
            store = ApiKeyStore(dynamodb_client=self.client("dynamodb"), table_name=table)
            key, _ = store.create("image-test", "image test", datetime.now(UTC))
            self._api = TestClient(app, headers={API_KEY_HEADER: key})
        response = self._api.post("/api/v1/tts/convert", json={"text": text})
        if response.status_code != 202:
            raise Failure(f"the API answered {response.status_code}: {response.text[:1000]}")
        return str(response.json()["conversion_id"])

    def sqs_event(self, *, expected: int) -> dict[str, Any]:
        """Receive from the jobs queue and build the event as Lambda's SQS event source does."""
        sqs = self.client("sqs")
        url = self.resources.jobs_queue_url
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(messages) < expected and time.monotonic() < deadline:
            messages += sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        if len(messages) != expected:
            raise Failure(f"expected {expected} job(s) on the jobs queue, received {len(messages)}")
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        return {"Records": records}

    def settle(self, event: dict[str, Any], failed_ids: set[str]) -> None:
        """What the event source does after the function returns: delete all but the reported failures."""
        sqs = self.client("sqs")
        for record in event["Records"]:
            if record["messageId"] not in failed_ids:
                sqs.delete_message(
                    QueueUrl=self.resources.jobs_queue_url, ReceiptHandle=record["receiptHandle"]
                )

    def jobs_left(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.resources.jobs_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def await_outcomes(self, task_ids: Sequence[str], *, timeout_s: float) -> dict[str, list[Any]]:
        """Lifecycle events (SNS -> the events queue) until every task is done or failed."""
        from tts_common.domain import TaskStatus
        from tts_common.messages import LifecycleEvent

        sqs = self.client("sqs")
        events: dict[str, list[Any]] = {t: [] for t in task_ids}
        deadline = time.monotonic() + timeout_s

        def finished(task_id: str) -> bool:
            return any(e.status in (TaskStatus.DONE, TaskStatus.FAILED) for e in events[task_id])

        while not all(finished(t) for t in task_ids):
            if time.monotonic() > deadline:
                waiting = [t for t in task_ids if not finished(t)]
                raise Failure(f"no done/failed event within {timeout_s:.0f} s for {waiting}")
            for m in sqs.receive_message(
                QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                event = LifecycleEvent.model_validate_json(m["Body"])
                events.setdefault(event.task_id, []).append(event)
                sqs.delete_message(QueueUrl=self.resources.events_queue_url, ReceiptHandle=m["ReceiptHandle"])
        return {t: sorted(events[t], key=lambda e: e.at) for t in task_ids}

    def check_done(self, task_id: str, events: Sequence[Any]) -> dict[str, Any]:
        """The task ended done, and its audio is in the bucket as the done event describes it."""
        import soundfile as sf

        from tts_common.domain import TaskStatus

        statuses = [str(e.status) for e in events]
        failed = [e for e in events if e.status is TaskStatus.FAILED]
        if failed:
            raise Failure(f"task {task_id} failed: {failed[0].error}")
        done = [e for e in events if e.status is TaskStatus.DONE]
        if not done or "processing" not in statuses:
            raise Failure(f"task {task_id}: lifecycle {statuses}, expected processing ... done")
        audio = done[-1].audio
        try:
            obj = self.client("s3").get_object(Bucket=self.resources.bucket_name, Key=audio.audio_key)
        except Exception as exc:
            raise Failure(
                f"task {task_id}: no audio at s3://{self.resources.bucket_name}/{audio.audio_key}"
            ) from exc
        body = obj["Body"].read()
        info = sf.info(io.BytesIO(body))
        problems = []
        if audio.file_size != len(body):
            problems.append(f"the done event says {audio.file_size} bytes, the bucket holds {len(body)}")
        if (info.samplerate, info.channels) != (audio.sampling_rate, 1):
            problems.append(
                f"audio is {info.samplerate} Hz x{info.channels}, the event says {audio.sampling_rate}"
            )
        if abs(info.duration - audio.duration_s) > 0.1:
            problems.append(f"audio lasts {info.duration:.2f} s, the event says {audio.duration_s:.2f} s")
        if audio.device != "cpu":
            problems.append(f"synthesized on {audio.device}")
        if problems:
            raise Failure(f"task {task_id}: " + "; ".join(problems))
        return {
            "task_id": task_id,
            "lifecycle": statuses,
            "audio_key": audio.audio_key,
            "audio_bytes": len(body),
            "audio_s": round(info.duration, 2),
            "format": f"{info.format}/{info.subtype} {info.samplerate} Hz",
        }


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in sorted(env.items()) for arg in ("-e", f"{key}={value}")]


def lambda_run_args(config: Any) -> list[str]:
    """How Lambda runs the image: read-only except /tmp, a non-root user, the function's memory."""
    return [
        *["--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
        *("--tmpfs", LAMBDA_TMPFS, "--user", LAMBDA_USER, "--memory", f"{config.worker_memory_mb}m"),
    ]


def labelled(name: str) -> list[str]:
    """A container's name, and the label that lets a later run remove it if this one is killed."""
    return ["--name", name, "--label", f"{RUN_LABEL}={os.getpid()}"]


def running(name: str) -> bool:
    result = docker("inspect", "-f", "{{.State.Running}}", name, check=False, timeout=30)
    return result.stdout.strip() == "true"


def save_logs(name: str, path: Path) -> str:
    result = docker("logs", name, check=False, timeout=60)
    text = result.stdout + result.stderr
    path.write_text(text, encoding="utf-8")
    return text


def log_records(text: str, message: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if message in line and line.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def model_load(logs: str) -> dict[str, Any] | None:
    """The registry's load and warm-up times of the first model, from the worker's own log lines."""
    loaded = log_records(logs, "model loaded into the registry")
    warmed = log_records(logs, "model warmed up")
    if not loaded:
        return None
    return {
        "model_id": loaded[0].get("model_id"),
        "source": loaded[0].get("source"),
        "load_s": loaded[0].get("load_s"),
        "warm_up_s": warmed[0].get("warm_up_s") if warmed else None,
    }


def lambda_environment(aws: Aws, api: RuntimeApi, xray: XRaySink) -> dict[str, str]:
    """The function's environment (the CDK app's) plus what Lambda itself sets in an execution environment."""
    return {
        **aws.worker_environment(),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(aws.config.worker_memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray.port}",
        "_AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1",
        "_AWS_XRAY_DAEMON_PORT": str(xray.port),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "TZ": ":UTC",
    }


def lambda_step(image: str, aws: Aws, containers: Containers, work: Path) -> dict[str, Any]:
    say("Lambda: the image's ENTRYPOINT/CMD (awslambdaric) against a local Runtime API, read-only, uid 993")
    name = containers.name("lambda")
    log_path = work / "lambda.log"
    warnings: list[str] = []
    with RuntimeApi() as api, XRaySink() as xray:
        env = env_args(lambda_environment(aws, api, xray))
        started = time.monotonic()
        docker("run", "-d", *labelled(name), *lambda_run_args(aws.config), *env, image)
        try:
            deadline = started + START_TIMEOUT_S
            while api.first_next_at is None and api.init_error is None:
                if time.monotonic() > deadline:
                    raise Failure(f"the runtime did not ask for an invocation within {START_TIMEOUT_S} s")
                if not running(name):
                    raise Failure("the function's container exited during init")
                time.sleep(0.2)
            if api.init_error is not None:
                raise Failure(f"init failed: {api.init_error.decode(errors='replace')[:2000]}")
            assert api.first_next_at is not None
            init_s = api.first_next_at - started
            say(f"  init (container start, awslambdaric, handler import): {init_s:.2f} s")
            invocations = []
            for label, text in (("cold", TEXTS[0]), ("warm", TEXTS[1])):
                task_id = aws.submit(text)
                event = aws.sqs_event(expected=1)
                invocation = api.invoke(event, timeout_s=JOB_TIMEOUT_S, alive=lambda: running(name))
                if invocation.error is not None:
                    raise Failure(
                        f"{label} invocation failed ({invocation.error_type}): "
                        + invocation.error.decode(errors="replace")[:2000]
                    )
                assert invocation.response is not None
                response = json.loads(invocation.response)
                aws.settle(event, {f["itemIdentifier"] for f in response.get("batchItemFailures", [])})
                if response != {"batchItemFailures": []}:
                    raise Failure(f"{label} invocation reported failures: {response}")
                outcome = aws.check_done(task_id, aws.await_outcomes([task_id], timeout_s=60)[task_id])
                say(
                    f"  {label} invocation: {invocation.duration_s:.2f} s -> "
                    f"{'/'.join(outcome['lifecycle'])}, "
                    f"{outcome['audio_bytes']} bytes of {outcome['format']}"
                )
                invocations.append({"kind": label, "duration_s": round(invocation.duration_s, 3), **outcome})
            if aws.jobs_left():
                raise Failure(f"{aws.jobs_left()} job(s) left on the jobs queue")
            # What the function wrote (only /tmp is writable): the image's decoder export must have been used.
            listing = docker("exec", name, "find", "/tmp", "-type", "f", check=False).stdout.split()
            exported = [path for path in listing if path.endswith(".onnx")]
            if exported:
                raise Failure(
                    f"the worker wrote a decoder export under /tmp ({', '.join(exported)}): it did not use"
                    " the model the image carries (the function's log says where it loaded one from)"
                )
        except Failure:
            tail = "\n".join(save_logs(name, log_path).splitlines()[-30:])
            say(f"the function's log (full: {log_path}):\n{tail}")
            raise
        logs = save_logs(name, log_path)
        docker("rm", "-f", name, check=False)
    ready = model_load(logs)
    decoder = log_records(logs, "decoder on ONNX Runtime")
    if not decoder:
        warnings.append("lambda: no 'decoder on ONNX Runtime' in the log: the CPU decoder runs on torch")
    elif not str(decoder[0].get("path", "")).startswith("/opt/"):
        warnings.append(f"lambda: the ONNX decoder came from {decoder[0].get('path')}, not from the image")
    if not xray.segments:
        warnings.append("lambda: no X-Ray segment reached the daemon address")
    for warning in warnings:
        say(f"  WARNING {warning}")
    say(
        f"  X-Ray: {len(xray.segments)} segment(s) reached the daemon address; "
        f"/tmp holds {len(listing)} file(s)"
    )
    return {
        "init_s": round(init_s, 3),
        "invocations": invocations,
        "model_load": ready,
        "decoder": decoder[0].get("path") if decoder else None,
        "tmp_files": listing,
        "xray_segments": len(xray.segments),
        "warnings": warnings,
        "log": str(log_path),
    }


def ecs_step(image: str, aws: Aws, containers: Containers, work: Path) -> dict[str, Any]:
    say("ECS: python -m tts_worker.ecs_loop from the image, uid 10001, against the same moto")
    name = containers.name("ecs")
    log_path = work / "ecs.log"
    # ecs_worker.py: STOP_TIMEOUT, the grace period between SIGTERM and SIGKILL.
    from infra.capabilities.ecs_worker import STOP_TIMEOUT

    stop_timeout_s = int(STOP_TIMEOUT.to_seconds())
    # As the ECS task runs it (ecs_worker.py adds the region), on the CPU: this image has no CUDA.
    env = env_args(aws.worker_environment())
    run_args = [*labelled(name), "--network", "host", "--user", ECS_USER, "--entrypoint", "python", *env]
    started = time.monotonic()
    docker("run", "-d", *run_args, image, "-m", "tts_worker.ecs_loop")
    warnings: list[str] = []
    try:
        # Sent at once: the job waits on the queue until the loop has loaded the model and polls.
        task_id = aws.submit(TEXTS[2])
        events = aws.await_outcomes([task_id], timeout_s=START_TIMEOUT_S + JOB_TIMEOUT_S)[task_id]
        outcome = aws.check_done(task_id, events)
        first_job_s = time.monotonic() - started
        say(
            f"  start + first job: {first_job_s:.2f} s -> {'/'.join(outcome['lifecycle'])}, "
            f"{outcome['audio_bytes']} bytes of {outcome['format']}"
        )
        deadline = time.monotonic() + 30
        while aws.jobs_left() and time.monotonic() < deadline:
            time.sleep(0.5)
        if aws.jobs_left():
            raise Failure("the loop did not delete its finished job from the queue")
        if not running(name):
            raise Failure("the loop exited after its job")
        stopping = time.monotonic()
        docker("stop", "-t", str(stop_timeout_s), name, timeout=stop_timeout_s + 60)
        stop_s = time.monotonic() - stopping
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = save_logs(name, log_path)
        if exit_code != "0":
            raise Failure(
                f"after SIGTERM the loop exited with {exit_code}, not 0 (137: killed at the timeout)"
            )
        say(f"  SIGTERM -> exit 0 in {stop_s:.1f} s (ECS allows {stop_timeout_s} s)")
        missing = [line for line in ("worker started", "worker stopped") if line not in logs]
        if missing:
            warnings.append(
                f"ecs: {missing} never logged: under `python -m tts_worker.ecs_loop` the module's logger is "
                "`__main__`, which copy_config_to_registered_loggers does not configure"
            )
    except Failure:
        tail = "\n".join(save_logs(name, log_path).splitlines()[-30:])
        say(f"the loop's log (full: {log_path}):\n{tail}")
        raise
    docker("rm", "-f", name, check=False)
    for warning in warnings:
        say(f"  WARNING {warning}")
    ready = model_load(logs)
    return {
        "start_and_first_job_s": round(first_job_s, 3),
        "stop_s": round(stop_s, 1),
        "model_load": ready,
        **outcome,
        "warnings": warnings,
        "log": str(log_path),
    }


# -- the image's facts ---------------------------------------------------------------------------------------


def image_facts(image: str, base: str) -> dict[str, Any]:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
    base_size = int(docker("image", "inspect", "-f", "{{.Size}}", base).stdout.strip())

    def history(name: str) -> list[tuple[int, str]]:
        out = docker(
            "history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", name
        ).stdout
        rows = []
        for line in out.splitlines():
            raw, _, created_by = line.partition("\t")
            rows.append((int(raw), " ".join(created_by.replace("/bin/sh -c #(nop) ", "").split())))
        return rows

    rows = history(image)
    own = rows[: len(rows) - len(history(base))]
    # A RUN step's record is `|N ARG=value... /bin/sh -c COMMAND` (with build args) or `/bin/sh -c COMMAND`.
    layers = [
        {"bytes": b, "step": re.sub(r"^(\|\d+ (\S+=\S* )*)?/bin/sh -c ", "RUN ", s)}
        for b, s in reversed(own)
        if b
    ]
    return {"image": image, "bytes": size, "base": base, "base_bytes": base_size, "layers": layers}


def package_facts(image: str) -> dict[str, Any]:
    """What pip resolved inside the build, against this machine's .venv (whose pip has other indexes and
    a constraints file)."""
    from importlib import metadata

    pip_list = ["-m", "pip", "list", "--format", "json"]
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, *pip_list).stdout
    inside = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}
    torch = inside.get("torch", "")
    if not torch.endswith("+cpu"):
        raise Failure(f"the Lambda image's torch is {torch or 'missing'}, not the CPU build")
    cuda = sorted(name for name in inside if name.startswith("nvidia-"))
    if cuda:
        raise Failure(f"the Lambda image carries CUDA packages: {cuda}")
    differ = {}
    for name in sorted(inside):
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if here != inside[name] and name not in ("pip", "setuptools", "serverless-tts"):
            differ[name] = {"image": inside[name], "venv": here}
    return {"torch": torch, "packages": len(inside), "differ_from_venv": differ}


# -- main ----------------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def deployment_config(model: str, context: Sequence[str]) -> Any:
    """The CDK app's configuration for this test (DeploymentConfig.from_context, as `cdk -c` gives it):
    `--context KEY=VALUE` items, and unless they name model_overrides, the default language's model is
    `model` (so that the image bakes it in)."""
    from infra.config import DeploymentConfig

    values: dict[str, str] = {}
    for item in context:
        key, sep, value = item.partition("=")
        if not sep:
            raise Failure(f"--context {item!r}: expected KEY=VALUE")
        values[key] = value
    try:
        if "model_overrides" not in values:
            default = DeploymentConfig.from_context(values.get).served_languages.default
            values["model_overrides"] = f"{default}={model}"
        return DeploymentConfig.from_context(values.get)
    except ValueError as exc:
        raise Failure(f"the CDK app's configuration rejects the test's context: {exc}") from exc


def build_worker(args: argparse.Namespace, config: Any, base: str, work: Path, report: dict[str, Any]) -> str:
    """`docker build` as `cdk deploy` runs it for the Lambda worker (infra/capabilities/worker_image.py:
    file, target, build args), plus the two build args this machine needs. Returns the image's tag."""
    from infra.capabilities.worker_image import image_asset_props

    props = image_asset_props(config, repo_root=ROOT, target="lambda-cpu")
    build_args = dict(props["build_args"])
    image = f"{WORKER_REPOSITORY}:{props['target']}-{slug(build_args.get('TTS_MODELS', 'default'))}"
    with contextlib.ExitStack() as stack:
        if args.torch_index_url:
            index_url = args.torch_index_url
        else:
            version = dockerfile_default("TORCH_VERSION")
            wheel = find_torch_wheel(args.wheels_dir or [Path("/opt/wheels")], version)
            index_url = stack.enter_context(TorchIndex(wheel, TORCH_INDEX_PORT)).url
            say(f"torch index {index_url}: {wheel.name}, everything else from PyPI")
        build_args |= {"PYTHON_BASE_IMAGE": base, "TORCH_INDEX_URL": index_url}
        listed = " ".join(f"{k}={v}" for k, v in build_args.items())
        say(f"building {image}: {props['file']} --target {props['target']}, {listed}")
        command = ["--network", "host", "-f", str(Path(props["directory"]) / props["file"])]
        command += ["--target", props["target"], "-t", image, *(["--no-cache"] if args.no_cache else [])]
        command += [arg for k, v in build_args.items() for arg in ("--build-arg", f"{k}={v}")]
        log_path = work / "build.log"
        seconds, steps, cached = run_build(
            [*command, props["directory"]], log_path, timeout_s=BUILD_TIMEOUT_S
        )
    report["build"] = {
        "seconds": round(seconds, 1),
        "steps": steps,
        "cached_steps": cached,
        "build_args": build_args,
        "log": str(log_path),
    }
    say(f"built in {seconds:.0f} s ({cached}/{steps} steps from cache)")
    return image


def clean_images(images: Sequence[str]) -> None:
    derived = docker("images", "-q", "--filter", f"label={LABEL}").stdout.split()
    for name in [*images, STANDIN_IMAGE, ROOTFS_IMAGE, *sorted(set(derived))]:
        if docker("image", "inspect", name, check=False).returncode == 0:
            docker("rmi", "-f", name, check=False, timeout=300)
    say("removed the images this test builds (--clean)")


def print_report(report: dict[str, Any]) -> None:
    print("\n== make image-test ==", flush=True)
    base = report.get("base", {})
    stand_in = " (stand-in: local/image_base/Dockerfile)" if base.get("stand_in") else ""
    print(f"base: {base.get('image')}{stand_in}")
    if build := report.get("build"):
        args = " ".join(f"{k}={v}" for k, v in build["build_args"].items())
        print(
            f"build: {build['seconds']:.0f} s, {build['cached_steps']}/{build['steps']} steps cached; {args}"
        )
    if facts := report.get("image"):
        over = human(facts["bytes"] - facts["base_bytes"])
        print(f"image {facts['image']}: {human(facts['bytes'])}, {over} over its base")
        for layer in facts["layers"]:
            print(f"  {human(layer['bytes']):>9}  {layer['step'][:110]}")
    if packages := report.get("packages"):
        differ = packages["differ_from_venv"]
        listed = ", ".join(f"{n} {v['image']} (.venv {v['venv']})" for n, v in differ.items()) or "none"
        print(f"packages: {packages['packages']}, torch {packages['torch']}; not as in .venv: {listed}")
    if lam := report.get("lambda"):
        cold, warm = lam["invocations"]
        load = lam.get("model_load") or {}
        print(
            f"lambda cold start: init {lam['init_s']:.2f} s (container, awslambdaric, handler import), then "
            f"{cold['duration_s']:.2f} s for the first invocation (torch import, model load "
            f"{load.get('load_s')} s, warm-up synthesis {load.get('warm_up_s')} s, the job); "
            f"warm invocation {warm['duration_s']:.2f} s"
        )
        print(
            f"lambda jobs: {'/'.join(cold['lifecycle'])}, {'/'.join(warm['lifecycle'])}, "
            "audio in the bucket; "
            f"{lam['xray_segments']} X-Ray segments"
        )
    if ecs := report.get("ecs"):
        print(
            f"ecs loop: start + first job {ecs['start_and_first_job_s']:.2f} s "
            f"({'/'.join(ecs['lifecycle'])}); "
            f"exit 0 {ecs['stop_s']} s after SIGTERM"
        )
    for warning in report.get("warnings", []):
        print(f"WARNING {warning}")
    print(
        "ecs-gpu target: not built here (its nvidia/cuda base comes from a registry; CUDA torch); "
        "tests/infra/test_infra_dockerfile.py checks it statically"
    )
    error = f" ({report['error']})" if report.get("error") else ""
    print(f"result: {report['result']}{error}", flush=True)


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--model", default="tiny-random", help="the default language's model, baked in (default: tiny-random)"
    )
    add("--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context, as `cdk -c`")
    add("--python-base", help="a python:3.11 bookworm image to build on instead of the stand-in")
    add("--torch-index-url", help="TORCH_INDEX_URL for the build (default: a loopback index)")
    add("--wheels-dir", type=Path, action="append", help="where the CPU torch wheel lies (/opt/wheels)")
    add("--storage-driver", help="for a dockerd started here (default: its choice, then vfs)")
    add("--no-cache", action="store_true", help="build the worker image without the build cache")
    add("--rebuild-base", action="store_true", help="make the stand-in base again")
    add("--build-only", action="store_true", help="build and report, run nothing")
    add("--clean", action="store_true", help="remove the images this builds when done")
    add("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "serverless-tts-image-test")
    args = parser.parse_args(argv)

    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "warnings": []}
    containers = Containers()
    images: list[str] = []
    # This process talks to moto only; fake credentials keep real ones out of every request.
    os.environ.update(AWS_ACCESS_KEY_ID="image-test", AWS_SECRET_ACCESS_KEY="image-test")
    os.environ["AWS_DEFAULT_REGION"] = REGION
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        config = deployment_config(args.model, args.context)
        with docker_daemon(work, args.storage_driver) as daemon:
            report["daemon"] = daemon
            try:
                remove_stale_containers()
                base = ensure_base(args, work, report)
                image = build_worker(args, config, base, work, report)
                images.append(image)
                report["image"] = image_facts(image, base)
                report["packages"] = package_facts(image)
                if not args.build_only:
                    from local.provision import provision

                    with moto_server() as endpoint:
                        resources = provision(
                            endpoint_url=endpoint,
                            max_receive_count=config.max_receive_count,
                            jobs_visibility_timeout_s=config.jobs_visibility_timeout_s,
                        )
                        aws = Aws(endpoint=endpoint, resources=resources, config=config)
                        say(f"moto on {endpoint}, provisioned as local.provision does")
                        report["lambda"] = lambda_step(image, aws, containers, work)
                        report["ecs"] = ecs_step(image, aws, containers, work)
                        report["warnings"] += report["lambda"]["warnings"] + report["ecs"]["warnings"]
                report["result"] = "passed"
            finally:
                containers.remove_all()
                if args.clean:
                    clean_images(images)
    except Failure as exc:
        report["result"] = "FAILED"
        report["error"] = str(exc).splitlines()[0]
        say(f"FAILED: {exc}")
    except KeyboardInterrupt:
        report["result"] = "interrupted"
    except Exception as exc:  # a bug here, or an API of the project's that moved: still a failed run
        report["result"] = "FAILED"
        report["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        report["seconds"] = round(time.monotonic() - _STARTED, 1)
        (work / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_report(report)
    print(f"{report['seconds']:.0f} s in all; logs and report.json in {work}")
    return 0 if report.get("result") == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
