"""`make soak`: start a fresh local stack, load it, break it on purpose, and check that it holds up.

    python -m bench.soak [--quick] [--distinct N] [--identical N] [--concurrency N] [--seed N]

The stack is `python -m local.stack` (its three tiny-random-* models, from the model store) on free ports,
its stdout and stderr in a log file that is kept (its path is printed at the end). Everything talks to
127.0.0.1 only: the API over HTTP (httpx), moto over boto3 where a check needs the queues or the table.

Load phase: distinct texts and one text submitted many times, shuffled, POSTed at N connections; then the
drain, and the worker's log ("task done" per synthesized task) counted per task. Fault phase: the worker and
the lifecycle consumer SIGKILLed mid-work, moto (a thread of the stack's own process) paused with SIGSTOP,
poison messages on the jobs and events queues, a job put straight into the jobs DLQ.

One line per check (PASS/FAIL, the check, its figures), then a summary block for docs/RELIABILITY.md. Exits 1
when a check failed, 130 when interrupted; the stack is stopped in every case (SIGINT, SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import boto3
import httpx
import psutil
from botocore.config import Config

from bench.texts import SENTENCES
from tts_common.jobs import job_for
from tts_common.lifecycle import LifecycleState
from tts_common.storage.models import records_for
from tts_common.storage.repository import TaskRepository

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(
    ["layers/common", "functions/api", "functions/worker", "functions/task_events", "."]
)
HOST = "127.0.0.1"
# What local/provision.py creates (prefix "tts") in local/stack.py's region.
REGION = "us-east-1"
TABLE_NAME = "tts-tasks"
JOBS_QUEUE, EVENTS_QUEUE, JOBS_DLQ = "tts-jobs", "tts-events", "tts-jobs-dlq"
WORKER_CMD, CONSUMER_CMD = "tts_worker.ecs_loop", "tts_task_events.poller"
# The worker's log line once it can take jobs (one per version of its start-up).
WORKER_READY = ("synthesizer ready", "model registry ready", "worker started")
TERMINAL = ("done", "failed")
CLIENT_TIMEOUT_S = 30.0
# The stack's development key (LOCAL_API_KEY): every request of the soak carries it.
API_KEY = "tts_soak" + "0123456789abcdefghijklmnopqrstuvwxyz"
AUTH = {"x-api-key": API_KEY}
IDENTICAL_TEXT = "Tämä yksi ja sama lause lähetetään palveluun monta kertaa peräkkäin."
SYLLABLES = ("ka", "ke", "ki", "ko", "ku", "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo", "mu", "na")
# Each phase draws its texts from its own range of codes, so that no two phases share a text.
CODES = {"load": 0, "kill": 1_000_000, "consumer": 1_100_000, "pause": 1_200_000, "poison": 1_300_000}

T = TypeVar("T")
R = TypeVar("R")


# -- texts ---------------------------------------------------------------------------------------------------


def code_word(n: int) -> str:
    """A Finnish-looking word unique to `n` (base 16 in syllables, at least three of them)."""
    digits: list[str] = []
    while n or len(digits) < 3:
        n, d = divmod(n, len(SYLLABLES))
        digits.append(SYLLABLES[d])
    return "".join(reversed(digits)).capitalize()


def unique_text(n: int, rng: random.Random, *, low: int = 30, high: int = 200) -> str:
    """low..high characters: a unique code word, then words of shuffled pool sentences, and a full stop."""
    target = rng.randint(low, high)
    words = [code_word(n) + ":"]
    pool = " ".join(rng.sample(SENTENCES, len(SENTENCES))).split()

    def finish(parts: list[str]) -> str:
        return " ".join(parts).rstrip(".,;:") + "."

    for word in pool:
        if len(finish([*words, word])) > target and len(finish(words)) >= low:
            break
        words.append(word)
    text = finish(words)
    assert low <= len(text) <= high, (len(text), text)
    return text


def long_text(n: int, size: int) -> str:
    """About `size` characters of whole pool sentences after a unique code word."""
    parts = [code_word(n) + "."]
    index = 0
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(SENTENCES[index % len(SENTENCES)])
        index += 1
    return " ".join(parts)


# -- figures -------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Check:
    name: str
    ok: bool
    figures: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, figures: str) -> bool:
        self.checks.append(Check(name, ok, figures))
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figures}", flush=True)
        return ok

    def note(self, line: str) -> None:
        self.notes.append(line)
        print(f"  - {line}", flush=True)


def info(line: str) -> None:
    print(f"  . {line}", flush=True)


# -- the stack -----------------------------------------------------------------------------------------------


def free_port(taken: Collection[int] = ()) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise RuntimeError("no free port")


class StackDown(Exception):
    """The stack's process is no longer running."""


class Stack:
    """One `python -m local.stack` in its own session, with its log file; stop() always ends it."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.api_port = free_port()
        self.moto_port = free_port({self.api_port})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._seen: dict[int, float] = {}  # child pid -> create_time, for the clean-up
        self.paused = False
        self.ready_line: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, up_timeout_s: float = 180.0, ready_timeout_s: float = 120.0) -> None:
        env = {
            **os.environ,
            "TTS_CACHE_DIR": str(self.workdir / "models"),
            "HOST": HOST,
            "API_PORT": str(self.api_port),
            "MOTO_PORT": str(self.moto_port),
            "LOCAL_API_KEY": API_KEY,
            "PYTHONPATH": PYTHONPATH,
            # The synthesized-exactly-once check reads the worker's INFO lines.
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_DEV": "false",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        self._log = self.log_path.open("ab")  # O_APPEND: the children's lines never overwrite each other
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches this script only, which then stops the stack in order
        )
        self._wait_log(("local stack is up",), up_timeout_s, required=True)
        self.remember_children()
        # The worker gets its model(s) ready after the API is up: the load starts once it says so. Which line
        # says it depends on the worker's version; without one, the load starts anyway after the wait.
        self.ready_line = self._wait_log(WORKER_READY, ready_timeout_s, required=False)

    def _wait_log(self, markers: Sequence[str], timeout_s: float, *, required: bool) -> str | None:
        """The first of `markers` in the log; None (StackDown when `required`) after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for _ in range(100_000):
            text = self.log_text()
            for marker in markers:
                if marker in text:
                    return marker
            if not self.alive():
                raise StackDown(
                    f"the stack exited ({self.returncode()}) before '{markers[0]}'; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if required:
            raise StackDown(f"no '{markers[0]}' within {timeout_s:.0f} s; see {self.log_path}")
        return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def children(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [p for p in found if _running(p)]

    def remember_children(self) -> None:
        for child in self.children():
            with suppress(psutil.Error):
                self._seen[child.pid] = child.create_time()

    def child(self, marker: str) -> psutil.Process | None:
        """The running child whose command line names `marker` (a module), if any."""
        for proc in self.children():
            try:
                if marker in " ".join(proc.cmdline()):
                    self._seen[proc.pid] = proc.create_time()
                    return proc
            except psutil.Error:
                continue
        return None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """SIGCONT (in case it is paused), SIGINT, then SIGTERM, then SIGKILL; then any child left over."""
        if self.proc is not None:
            self.remember_children()
            for sig, wait_s in ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                if self.proc.poll() is not None:
                    break
                try:
                    os.kill(self.pid, signal.SIGCONT)
                    self.proc.send_signal(sig)
                    self.proc.wait(timeout=wait_s)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    continue
            for pid, created in self._seen.items():  # only processes this stack started (pid and start time)
                try:
                    proc = psutil.Process(pid)
                    if proc.create_time() == created and _running(proc):
                        proc.kill()
                except psutil.Error:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


# -- HTTP ----------------------------------------------------------------------------------------------------


def pool_map(
    fn: Callable[[httpx.Client, T], R], items: Sequence[T], *, base_url: str, workers: int
) -> list[R]:
    """fn(client, item) for every item on `workers` threads, each with its own httpx client; in order."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def run(item: T) -> R:
        client = getattr(local, "client", None)
        if client is None:
            client = httpx.Client(headers=AUTH, base_url=base_url, timeout=CLIENT_TIMEOUT_S)
            local.client = client
            with lock:
                clients.append(client)
        return fn(client, item)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="soak")
    try:
        return list(pool.map(run, items))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for client in clients:
            client.close()


@dataclass
class Submission:
    index: int
    kind: str  # distinct | identical | ...
    text: str
    started: float = 0.0
    latency_s: float = 0.0
    status: int | None = None
    conversion_id: str | None = None
    deduplicated: bool | None = None
    error: str | None = None


def submit(client: httpx.Client, item: Submission) -> Submission:
    item.started = time.monotonic()
    try:
        response = client.post("/api/v1/tts/convert", json={"text": item.text})
        item.latency_s = time.monotonic() - item.started
        item.status = response.status_code
        if response.status_code == 202:
            body = response.json()
            item.conversion_id = body["conversion_id"]
            item.deduplicated = body["deduplicated"]
        else:
            item.error = response.text[:200]
    except httpx.HTTPError as exc:
        item.latency_s = time.monotonic() - item.started
        item.error = f"{type(exc).__name__}: {exc}"
    return item


def get_task(client: httpx.Client, task_id: str) -> dict[str, Any] | None:
    try:
        response = client.get(f"/api/v1/tts/{task_id}")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def submit_texts(stack: Stack, texts: Sequence[str], kind: str, *, workers: int = 8) -> list[Submission]:
    items = [Submission(i, kind, text) for i, text in enumerate(texts)]
    return pool_map(submit, items, base_url=stack.base_url, workers=workers)


@dataclass
class Answer:
    label: str
    status: int | None
    latency_s: float
    text: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Drain:
    tasks: dict[str, dict[str, Any]]  # the final GET of each id (empty dict when it failed)
    elapsed_s: float
    timed_out: bool

    def count(self, status: str) -> int:
        return sum(1 for t in self.tasks.values() if t.get("status") == status)

    def not_done(self) -> Counter[str]:
        return Counter(
            str(t.get("status", "unanswered")) for t in self.tasks.values() if t.get("status") != "done"
        )

    def leftover(self) -> str:
        """' (queued 3, failed 1)' for the tasks not done, or ''."""
        rest = self.not_done()
        return f" ({', '.join(f'{k} {v}' for k, v in sorted(rest.items()))})" if rest else ""


def wait_terminal(stack: Stack, ids: Collection[str], *, timeout_s: float, workers: int = 16) -> Drain:
    """Poll until every id is done or failed (or the time is up, or the stack is gone); then GET each one.

    Few ids: GET each pending one every second. Many: the stats endpoint (one cheap read) every few seconds,
    and a pass over the list endpoint by status once the stats count enough new terminal tasks (or every
    30 s), so that the polling takes little CPU from the worker on a small machine.
    """
    pending = set(ids)
    started = time.monotonic()
    deadline = started + timeout_s
    scanned_terminal: int | None = None  # the stats' done + failed at the last pass over the list
    next_scan = started
    with httpx.Client(headers=AUTH, base_url=stack.base_url, timeout=CLIENT_TIMEOUT_S) as client:
        for _ in range(100_000):
            if not pending or time.monotonic() > deadline or not stack.alive():
                break
            if len(pending) > 20:
                terminal = _terminal_count(client)
                enough = terminal is not None and scanned_terminal is not None
                if (
                    time.monotonic() >= next_scan
                    or not enough
                    or (terminal or 0) - (scanned_terminal or 0) >= len(pending)
                ):
                    for status in TERMINAL:
                        pending -= _listed(client, status, max_pages=1000, deadline=deadline)
                    scanned_terminal = terminal
                    next_scan = time.monotonic() + 30
                time.sleep(3.0)
            else:
                for task_id in sorted(pending):
                    task = get_task(client, task_id)
                    if task is not None and task["status"] in TERMINAL:
                        pending.discard(task_id)
                time.sleep(1.0)
    elapsed = time.monotonic() - started
    final = pool_map(lambda c, i: get_task(c, i) or {}, sorted(ids), base_url=stack.base_url, workers=workers)
    tasks = dict(zip(sorted(ids), final, strict=True))
    return Drain(tasks=tasks, elapsed_s=elapsed, timed_out=bool(pending))


def _terminal_count(client: httpx.Client) -> int | None:
    """done + failed over the whole table, from the stats endpoint; None when it does not answer."""
    try:
        response = client.get("/api/v1/tts/stats")
        counts = response.json()["counts"] if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return int(counts.get("done", 0)) + int(counts.get("failed", 0)) if isinstance(counts, dict) else None


def _listed(client: httpx.Client, status: str, *, max_pages: int, deadline: float) -> set[str]:
    """The ids the list endpoint shows with `status` (every page, bounded in pages and time)."""
    found: set[str] = set()
    token: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"status": status, "limit": 100}
        if token:
            params["next_token"] = token
        try:
            response = client.get("/api/v1/tts", params=params)
        except httpx.HTTPError:
            break
        if response.status_code != 200:
            break
        page = response.json()
        found.update(item["conversion_id"] for item in page["items"])
        token = page.get("next_token")
        if not token or time.monotonic() > deadline:
            break
    return found


def wait_for(predicate: Callable[[], T | None], *, timeout_s: float, every_s: float = 0.25) -> T | None:
    """predicate() until it returns something other than None, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    for _ in range(1_000_000):
        value = predicate()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(every_s)
    return None


# -- the worker's log ----------------------------------------------------------------------------------------


def synthesized(log_texts: Iterable[str]) -> tuple[Counter[str], int]:
    """How often the worker logged "task done" per task id; and how many such lines did not parse."""
    counts: Counter[str] = Counter()
    broken = 0
    for text in log_texts:
        for line in text.splitlines():
            if '"task done"' not in line:
                continue
            try:
                record = json.loads(line[line.index("{") :])
            except ValueError:
                broken += 1
                continue
            if isinstance(record, dict) and record.get("message") == "task done":
                task_id = record.get("task_id")
                if isinstance(task_id, str):
                    counts[task_id] += 1
                else:
                    broken += 1
    return counts, broken


def exactly_once(report: Report, name: str, ids: Collection[str], stacks: Sequence[Stack]) -> None:
    counts, broken = synthesized(s.log_text() for s in stacks)
    per = Counter(min(counts.get(i, 0), 2) for i in ids)
    worst = sorted((i for i in ids if counts.get(i, 0) >= 2), key=lambda i: -counts[i])[:3]
    figures = (
        f"{len(ids)} tasks: {per.get(1, 0)} once, {per.get(0, 0)} never, {per.get(2, 0)} twice or more"
        + (f" (e.g. {', '.join(f'{i[:8]}x{counts[i]}' for i in worst)})" if worst else "")
        + (f"; {broken} 'task done' lines did not parse" if broken else "")
    )
    report.check(name, per.get(1, 0) == len(ids) and not broken, figures)


# -- the soak ------------------------------------------------------------------------------------------------


@dataclass
class Options:
    distinct: int
    identical: int
    concurrency: int
    seed: int
    drain_s_per_task: float
    kill_text_chars: int


class Soak:
    def __init__(self, options: Options, workdir: Path, report: Report) -> None:
        self.o = options
        self.workdir = workdir
        self.report = report
        self.rng = random.Random(options.seed)
        self.stacks: list[Stack] = []
        self.done_ids: set[str] = set()  # every task of ours seen done, for the last exactly-once check
        self.counts: dict[str, int] = {}

    @property
    def stack(self) -> Stack:
        return self.stacks[-1]

    def start_stack(self) -> Stack:
        stack = Stack(self.workdir, f"stack-{len(self.stacks) + 1}")
        self.stacks.append(stack)
        started = time.monotonic()
        stack.start()
        info(
            f"{stack.name} up in {time.monotonic() - started:.1f} s: API {stack.base_url}, moto "
            f"{stack.endpoint}, pid {stack.pid}, log {stack.log_path}"
        )
        if stack.ready_line is None:
            self.report.note(
                f"{stack.name}: the worker logged none of {WORKER_READY}; the load started anyway"
            )
        return stack

    def ensure_stack(self, check: str) -> Stack:
        """The running stack; a fresh one (noted) when the last one has exited."""
        if not self.stack.alive():
            self.report.note(
                f"{self.stack.name} exited ({self.stack.returncode()}); {check} runs on a fresh stack"
            )
            self.start_stack()
        return self.stack

    def texts(self, phase: str, count: int) -> list[str]:
        return [unique_text(CODES[phase] + n, self.rng) for n in range(count)]

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            region_name=REGION,
            endpoint_url=self.stack.endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}),
        )

    def queue_urls(self) -> dict[str, str]:
        urls = self.sqs().list_queues().get("QueueUrls", [])
        return {url.rsplit("/", 1)[-1]: url for url in urls}

    def run_all(self) -> None:
        self.start_stack()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("load", self.load_phase),
            ("worker SIGKILL", self.worker_kill),
            ("consumer SIGKILL", self.consumer_kill),
            ("moto paused", self.moto_pause),
            ("poison messages", self.poison),
            ("jobs DLQ", self.dead_letter),
        ]
        for name, step in steps:
            print(f"\n[{name}]", flush=True)
            try:
                self.ensure_stack(name)
                step()
            except StackDown as exc:
                self.report.check(f"{name}: could run", False, str(exc))
            except (httpx.HTTPError, OSError, RuntimeError, KeyError, ValueError) as exc:
                self.report.check(f"{name}: ran without an error", False, f"{type(exc).__name__}: {exc}")
        print("\n[end]", flush=True)
        exactly_once(
            self.report, "synthesized exactly once (every task done, all phases)", self.done_ids, self.stacks
        )
        self.report.check(
            "stack still up at the end",
            self.stack.alive(),
            f"{len(self.stacks)} stack(s) started; last rc {self.stack.returncode()}",
        )

    # -- load ------------------------------------------------------------------------------------------------

    def load_phase(self) -> None:
        o = self.o
        stack = self.stack
        items = [Submission(0, "distinct", t) for t in self.texts("load", o.distinct)]
        items += [Submission(0, "identical", IDENTICAL_TEXT) for _ in range(o.identical)]
        random.Random(o.seed + 1).shuffle(items)
        for index, item in enumerate(items):
            item.index = index
        lengths = [len(i.text) for i in items if i.kind == "distinct"]
        info(
            f"{len(items)} submissions ({o.distinct} distinct texts of {min(lengths, default=0)}-"
            f"{max(lengths, default=0)} characters, {o.identical} of one text) at {o.concurrency} connections"
        )
        rss_before = self.rss_mib()
        started = time.monotonic()
        results = pool_map(submit, items, base_url=stack.base_url, workers=o.concurrency)
        load_s = time.monotonic() - started
        self.counts["submissions"] = len(results)

        statuses = Counter(r.status for r in results if r.status is not None)
        errors = [r for r in results if r.status is None]
        server = sum(n for s, n in statuses.items() if s >= 500)
        other = sum(n for s, n in statuses.items() if s != 202 and s < 500)
        self.report.check(
            "load: no 5xx, every response 202",
            server == 0 and other == 0 and not errors,
            f"{len(results)} requests in {load_s:.1f} s ({len(results) / load_s:.0f}/s); status codes "
            f"{dict(sorted(statuses.items()))}",
        )
        kinds = Counter((e.error or "").split(":")[0] for e in errors)
        self.report.check(
            "load: no client timeouts or connection errors",
            not errors,
            f"{len(errors)} of {len(results)}" + (f" {dict(kinds)}" if errors else ""),
        )

        distinct = [r for r in results if r.kind == "distinct" and r.status == 202]
        same = [r for r in results if r.kind == "identical" and r.status == 202]
        distinct_ids = {r.conversion_id for r in distinct}
        same_ids = {r.conversion_id for r in same}
        distinct_false = sum(1 for r in distinct if r.deduplicated is False)
        same_new = sum(1 for r in same if r.deduplicated is False)
        ok = (
            distinct_false == len(distinct) == len(distinct_ids) == o.distinct
            and len(same) == o.identical
            and len(same_ids) == 1
            and same_new == 1  # a fresh stack: exactly one of them created the task
            and not distinct_ids & same_ids
        )
        self.report.check(
            "load: no false deduplicated",
            ok,
            f"distinct: {len(distinct)} answered, {distinct_false} deduplicated=false, "
            f"{len(distinct_ids)} unique ids; identical: {len(same)} answered, {len(same_ids)} id(s), "
            f"{same_new} deduplicated=false, "
            f"{len(same) - same_new} true",
        )

        ordered = sorted(results, key=lambda r: r.started)
        latencies = [r.latency_s for r in ordered]
        window = min(100, len(ordered) // 2)
        first = percentile(latencies[:window], 99)
        last = percentile(latencies[-window:], 99)
        ratio = last / first if first > 0 else float("inf")
        self.report.check(
            f"load: p99 of the last {window} within 1.5x of the first {window}",
            ratio <= 1.5,
            f"p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}, max "
            f"{ms(max(latencies, default=0))}; first {window} p99 {ms(first)}, last {window} p99 {ms(last)} "
            f"({ratio:.2f}x)",
        )

        ids = {r.conversion_id for r in results if r.conversion_id}
        self.counts["load tasks"] = len(ids)
        drain = wait_terminal(stack, ids, timeout_s=120 + o.drain_s_per_task * len(ids))
        done = drain.count("done")
        self.done_ids |= {i for i, t in drain.tasks.items() if t.get("status") == "done"}
        starts = [parse_time(t.get("started_at")) for t in drain.tasks.values()]
        ends = [parse_time(t.get("completed_at")) for t in drain.tasks.values()]
        first_start = min((s for s in starts if s), default=None)
        last_end = max((e for e in ends if e), default=None)
        span = (last_end - first_start).total_seconds() if first_start and last_end else float("nan")
        chars = sum(len(i.text) for i in items if i.kind == "distinct") + len(IDENTICAL_TEXT)
        self.report.check(
            "drain: every task done",
            done == len(ids) and not drain.timed_out,
            f"{done}/{len(ids)} done{drain.leftover()}; drained {drain.elapsed_s:.0f} s after the "
            f"last submit{' (timed out)' if drain.timed_out else ''}; {done / span:.2f} tasks/s, "
            f"{chars / span:.0f} chars/s (first start to last completion, {span:.0f} s)",
        )
        exactly_once(self.report, "load: synthesized exactly once", ids, self.stacks)
        rss_after = self.rss_mib()
        self.report.note(
            "children's RSS before/after the load (MiB): "
            + ", ".join(f"{k} {rss_before.get(k, 0):.0f}/{v:.0f}" for k, v in rss_after.items())
        )

    def rss_mib(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, marker in (("api", "uvicorn"), ("worker", WORKER_CMD), ("consumer", CONSUMER_CMD)):
            proc = self.stack.child(marker)
            try:
                found[name] = proc.memory_info().rss / 2**20 if proc else 0.0
            except psutil.Error:
                found[name] = 0.0
        return found

    # -- faults ----------------------------------------------------------------------------------------------

    def worker_kill(self) -> None:
        name = "worker SIGKILL mid-job: task done after redelivery, worker restarted"
        stack = self.stack
        text = long_text(CODES["kill"], self.o.kill_text_chars)
        with httpx.Client(headers=AUTH, base_url=stack.base_url, timeout=CLIENT_TIMEOUT_S) as client:
            submitted = time.monotonic()
            task_id = (
                client.post("/api/v1/tts/convert", json={"text": text})
                .raise_for_status()
                .json()["conversion_id"]
            )

            def mid_job() -> dict[str, Any] | None:
                task = get_task(client, task_id)
                progress = (task or {}).get("progress") or {}
                if task and task["status"] in TERMINAL:
                    return task
                return (
                    task if task and task["status"] == "processing" and progress.get("pieces_done") else None
                )

            at_kill = wait_for(mid_job, timeout_s=120)
            if at_kill is None or at_kill["status"] != "processing":
                self.report.check(name, False, f"the task never was mid-job: {at_kill}")
                return
            worker = stack.child(WORKER_CMD)
            if worker is None:
                self.report.check(name, False, "no worker child found")
                return
            old_pid = worker.pid
            progress = at_kill["progress"]
            os.kill(old_pid, signal.SIGKILL)
            killed = time.monotonic()
            info(
                f"SIGKILLed worker pid {old_pid} at piece "
                f"{progress['pieces_done']}/{progress['pieces_total']} of a {len(text)}-character text"
            )
            new_pid: int | None = None
            restarted_s = float("nan")
            task: dict[str, Any] | None = None
            # The redelivery (the local jobs visibility timeout, 120 s), then the whole text again at the pace
            # seen before the kill, with room to spare.
            pace_s = (killed - submitted) * progress["pieces_total"] / max(1, progress["pieces_done"])
            deadline = killed + 180 + 2 * pace_s
            while time.monotonic() < deadline and stack.alive():
                if new_pid is None:
                    new = stack.child(WORKER_CMD)
                    if new is not None and new.pid != old_pid:
                        new_pid, restarted_s = new.pid, time.monotonic() - killed
                task = get_task(client, task_id) or task
                if task and task["status"] in TERMINAL and new_pid is not None:
                    break
                time.sleep(1.0)
            took = time.monotonic() - killed
        if not stack.alive():
            self.report.check(
                name,
                False,
                f"the stack exited (rc {stack.returncode()}) after its worker was killed: no supervisor "
                f"restarted it (task {task_id[:8]} left {task and task['status']})",
            )
            return
        status = task["status"] if task else "unanswered"
        if status == "done":
            self.done_ids.add(task_id)
        counts, _ = synthesized(s.log_text() for s in self.stacks)
        self.report.check(
            name,
            status == "done" and new_pid is not None,
            f"task {status} {took:.0f} s after the kill (attempts {task and task.get('attempts')}, "
            f"synthesized {counts.get(task_id, 0)}x); worker pid {old_pid} -> {new_pid} after "
            f"{restarted_s:.1f} s; stack up",
        )

    def consumer_kill(self) -> None:
        name = "consumer SIGKILL: 50 in-flight tasks converge to done"
        stack = self.stack
        results = submit_texts(stack, self.texts("consumer", 50), "consumer")
        ids = {r.conversion_id for r in results if r.conversion_id}
        if len(ids) != 50:
            self.report.check(name, False, f"only {len(ids)} of 50 submissions accepted")
            return
        consumer = stack.child(CONSUMER_CMD)
        if consumer is None:
            self.report.check(name, False, "no consumer child found")
            return
        time.sleep(2.0)  # let the worker get going: some tasks processing, some done, most queued
        old_pid = consumer.pid
        with httpx.Client(headers=AUTH, base_url=stack.base_url, timeout=CLIENT_TIMEOUT_S) as client:
            at_kill = Counter(str((get_task(client, i) or {}).get("status")) for i in ids)
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()
        info(f"SIGKILLed consumer pid {old_pid}; the 50 tasks then: {dict(at_kill)}")
        new = wait_for(
            lambda: (lambda c: c if c is not None and c.pid != old_pid else None)(stack.child(CONSUMER_CMD)),
            timeout_s=60,
            every_s=0.5,
        )
        restarted = time.monotonic() - killed
        drain = wait_terminal(stack, ids, timeout_s=240 + 2 * len(ids))
        done = drain.count("done")
        self.done_ids |= {i for i, t in drain.tasks.items() if t.get("status") == "done"}
        self.report.check(
            name,
            done == len(ids) and stack.alive(),
            f"{done}/{len(ids)} done{drain.leftover()} {time.monotonic() - killed:.0f} s after the "
            f"kill; consumer pid {old_pid} -> {new.pid if new else None}"
            + (f" after {restarted:.1f} s" if new else "")
            + ("" if stack.alive() else f"; the stack exited (rc {stack.returncode()})"),
        )

    def moto_pause(self, pause_s: float = 30.0, every_s: float = 2.0, budget_s: float = 5.0) -> None:
        stack = self.stack
        texts = iter(self.texts("pause", 200))
        known = submit_texts(stack, [next(texts)], "pause")[0]
        if known.conversion_id is None:
            self.report.check("moto paused: could run", False, f"could not submit a text: {known.error}")
            return
        known_id = known.conversion_id
        wait_terminal(stack, [known_id], timeout_s=60)
        lock = threading.Lock()

        def calls() -> list[tuple[str, str, str, dict[str, str] | None]]:
            with lock:
                text = next(texts)
            return [
                ("health", "GET", "/health", None),
                ("task", "GET", f"/api/v1/tts/{known_id}", None),
                ("list", "GET", "/api/v1/tts?limit=5", None),
                ("submit", "POST", "/api/v1/tts/convert", {"text": text}),
            ]

        def call(spec: tuple[str, str, str, dict[str, str] | None]) -> Answer:
            label, method, path, body = spec
            started = time.monotonic()
            try:
                with httpx.Client(headers=AUTH, base_url=stack.base_url, timeout=3 * budget_s) as client:
                    response = client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                return Answer(label, None, time.monotonic() - started, type(exc).__name__)
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            return Answer(
                label,
                response.status_code,
                time.monotonic() - started,
                response.text[:120],
                parsed if isinstance(parsed, dict) else {},
            )

        pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="soak-pause")
        futures: list[Future[Answer]] = []
        stack.pause()
        paused_at = time.monotonic()
        try:
            for n in range(int(pause_s / every_s) + 1):
                if time.monotonic() - paused_at >= pause_s:
                    break
                futures += [pool.submit(call, spec) for spec in calls()]
                time.sleep(max(0.0, paused_at + (n + 1) * every_s - time.monotonic()))
            wait_futures(futures, timeout=3 * budget_s + 5)  # no call in flight when moto comes back
        finally:
            stack.resume()
            pool.shutdown(wait=False, cancel_futures=True)
        paused_for = time.monotonic() - paused_at
        during = [f.result() for f in futures if f.done()]
        bad = Counter(f"{a.label} {a.status or a.text}" for a in during if a.status != 503)
        slow = [a for a in during if a.latency_s > budget_s]
        worst = max((a.latency_s for a in during), default=float("nan"))
        self.report.check(
            f"moto paused {pause_s:.0f} s: every call 503 within {budget_s:.0f} s",
            len(during) == len(futures) > 0 and not bad and not slow,
            f"{len(during)} calls (health, task, list, submit every {every_s:.0f} s) over a "
            f"{paused_for:.0f} s pause; {sum(1 for a in during if a.status == 503)} answered 503; "
            f"max latency {worst:.2f} s; "
            f"{len(slow)} over {budget_s:.0f} s"
            + (f"; not 503: {dict(bad)}" if bad else "")
            + (f"; {len(futures) - len(during)} still unanswered" if len(futures) > len(during) else ""),
        )

        resumed = time.monotonic()
        expected = {"health": 200, "task": 200, "list": 200, "submit": 202}
        recovered: list[Answer] | None = None
        last: list[Answer] = []
        for _ in range(120):
            if time.monotonic() - resumed > 60 or not stack.alive():
                break
            last = [call(spec) for spec in calls()]
            if all(a.status == expected[a.label] for a in last):
                recovered = last
                break
            time.sleep(1.0)
        took = time.monotonic() - resumed
        self.report.check(
            "moto paused: calls recover (200/202) after SIGCONT",
            recovered is not None,
            f"all four answered as expected {took:.1f} s after SIGCONT"
            if recovered
            else f"not within {took:.0f} s; last round {[(a.label, a.status or a.text) for a in last]}",
        )
        if recovered is None:
            self.report.check("moto paused: a text POSTed afterwards ends done", False, "no call recovered")
            return
        after_id = recovered[3].body.get("conversion_id")
        if not isinstance(after_id, str):
            self.report.check("moto paused: a text POSTed afterwards ends done", False, "its body had no id")
            return
        drain = wait_terminal(stack, [after_id], timeout_s=120)
        status = drain.tasks[after_id].get("status")
        if status == "done":
            self.done_ids.add(after_id)
        self.report.check(
            "moto paused: a text POSTed afterwards ends done",
            status == "done",
            f"{after_id[:8]} {status} {drain.elapsed_s:.1f} s after it was accepted",
        )

    def poison(self) -> None:
        stack = self.stack
        urls = self.queue_urls()
        sqs = self.sqs()
        now = datetime.now(UTC).isoformat()
        fake = uuid.uuid4().hex
        job = {
            "schema_version": 1,
            "task_id": fake,
            "dedupe_key": "0" * 64,
            "language": "fi",
            "model_id": "tiny-random",
            "text": "Tätä tehtävää ei ole olemassa.",
            "audio_key": f"audio/{fake}.wav",
            "submitted_at": now,
        }
        event = {"schema_version": 1, "task_id": uuid.uuid4().hex, "status": "processing", "at": now}
        bodies = {
            JOBS_QUEUE: [
                "{not json",
                json.dumps(job),
                json.dumps({**job, "task_id": uuid.uuid4().hex, "max_piece_chars": 1}),
            ],
            EVENTS_QUEUE: [
                "{not json",
                json.dumps(event),
                json.dumps({**event, "task_id": uuid.uuid4().hex, "attempt": 10**9}),
            ],
        }
        for queue, messages in bodies.items():
            for body in messages:
                sqs.send_message(QueueUrl=urls[queue], MessageBody=body)
        info(
            "sent 3 poison messages to each of tts-jobs and tts-events (bad JSON, unknown task, out of range)"
        )
        results = submit_texts(stack, self.texts("poison", 20), "poison")
        ids = {r.conversion_id for r in results if r.conversion_id}
        drain = wait_terminal(stack, ids, timeout_s=120 + 3 * len(ids))
        done = drain.count("done")
        self.done_ids |= {i for i, t in drain.tasks.items() if t.get("status") == "done"}
        self.report.check(
            "poison messages: 20 real tasks still end done",
            len(ids) == 20 and done == 20,
            f"{done}/{len(ids)} done{drain.leftover()} in {drain.elapsed_s:.0f} s; stack "
            f"{'up' if stack.alive() else 'exited'}",
        )

    def dead_letter(self, bound_s: float = 15.0) -> None:
        name = f"jobs DLQ: a dead-lettered job fails its task (dead_lettered) within {bound_s:.0f} s"
        stack = self.stack
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        repository = TaskRepository(records_for(TABLE_NAME, REGION, host=stack.endpoint), ttl_days=30)
        # A real task's record is the template: whatever the stack stores per task (model, voice ...), the
        # new task has too; only its identity, text and life are its own.
        real = submit_texts(stack, [unique_text(CODES["poison"] + 100, self.rng)], "dlq")[0]
        if real.conversion_id is None:
            self.report.check(name, False, f"could not submit a text: {real.error}")
            return
        template = repository.get(real.conversion_id, tenant_id=None, consistent=True)
        text = "Tämä tehtävä päätyy suoraan kuolleiden kirjeiden jonoon."
        task_id = uuid.uuid4().hex
        task, _ = repository.create_or_get(
            replace(
                template,
                task_id=task_id,
                dedupe_key=hashlib.sha256(f"soak dead letter {task_id}".encode()).hexdigest(),
                text=text,
                text_key=None,
                text_chars=len(text),
                custom_filename=None,
                submitted_at=datetime.now(UTC),
                lifecycle=LifecycleState(),
                dedupe_hits=0,
                expires_at=None,
            )
        )
        self.sqs().send_message(
            QueueUrl=self.queue_urls()[JOBS_DLQ], MessageBody=job_for(task).model_dump_json()
        )
        sent = time.monotonic()
        with httpx.Client(headers=AUTH, base_url=stack.base_url, timeout=CLIENT_TIMEOUT_S) as client:
            found = wait_for(
                lambda: (lambda t: t if t and t["status"] in TERMINAL else None)(
                    get_task(client, task.task_id)
                ),
                timeout_s=bound_s,
            )
            took = time.monotonic() - sent
            found = found or get_task(client, task.task_id)
        status = (found or {}).get("status")
        code = ((found or {}).get("error") or {}).get("code")
        self.report.check(
            name,
            status == "failed" and code == "dead_lettered" and took <= bound_s,
            f"task {task.task_id[:8]} (written to the table, its job put on tts-jobs-dlq) {status} "
            f"({code}) after {took:.1f} s",
        )


# -- summary -------------------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


def revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else "unknown"


def summary(
    report: Report, soak: Soak | None, options: Options, quick: bool, total_s: float, started: datetime
) -> str:
    failed = [c for c in report.checks if not c.ok]
    lines = [
        f"### `make soak`{' --quick' if quick else ''}: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {machine()}; Python {sys.version.split()[0]}; "
        "models tiny-random-{fin,eng,swh} from the model store",
        f"- revision: {revision()}",
        f"- load: {options.distinct} distinct texts + {options.identical} submissions of one text at "
        f"{options.concurrency} connections (seed {options.seed})",
    ]
    if soak is not None:
        counts = ", ".join(f"{k} {v}" for k, v in soak.counts.items())
        lines.append(
            f"- counts: {counts}; tasks seen done {len(soak.done_ids)}; stacks started {len(soak.stacks)}"
        )
    lines += [
        f"- total time: {total_s / 60:.1f} min; {len(report.checks) - len(failed)} of "
        f"{len(report.checks)} checks passed",
        *[f"- note: {n}" for n in report.notes],
        "",
        "| check | result | figures |",
        "|---|---|---|",
        *[
            f"| {c.name} | {'PASS' if c.ok else '**FAIL**'} | {c.figures.replace('|', '/')} |"
            for c in report.checks
        ],
    ]
    return "\n".join(lines)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the soak like Ctrl-C does: the stack is stopped on the way out."""

    def raise_interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 distinct, 50 identical, 16 connections")
    parser.add_argument("--distinct", type=int, default=None, help="distinct texts (2000)")
    parser.add_argument("--identical", type=int, default=None, help="submissions of one text (500)")
    parser.add_argument("--concurrency", type=int, default=None, help="connections (32)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--drain-s-per-task", type=float, default=2.0, help="drain bound: 120 s + this per task (2.0)"
    )
    parser.add_argument(
        "--kill-text-chars",
        type=int,
        default=40_000,
        help="the worker-kill text's length (40000: ~7 s of tiny-random synthesis on 2 free cores, minutes "
        "on a loaded machine; it must still be speaking when the worker is killed)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where logs go (default: a new temp dir)")
    args = parser.parse_args(argv)
    quick = (200, 50, 16)
    full = (2000, 500, 32)
    defaults = quick if args.quick else full
    options = Options(
        distinct=args.distinct if args.distinct is not None else defaults[0],
        identical=args.identical if args.identical is not None else defaults[1],
        concurrency=args.concurrency if args.concurrency is not None else defaults[2],
        seed=args.seed,
        drain_s_per_task=args.drain_s_per_task,
        kill_text_chars=args.kill_text_chars,
    )
    if options.distinct < 1 or options.identical < 1 or options.concurrency < 1:
        parser.error("--distinct, --identical and --concurrency must be at least 1")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tts-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = Report()
    started_at = datetime.now(UTC)
    started = time.monotonic()
    soak: Soak | None = None
    code = 0
    with terminate_as_interrupt():
        try:
            soak = Soak(options, workdir, report)
            soak.run_all()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the stack", flush=True)
            report.notes.append("interrupted: the checks after the last one listed did not run")
            code = 130
        except StackDown as exc:
            report.check("stack starts", False, str(exc))
        finally:
            for stack in reversed(soak.stacks if soak else []):
                stack.stop()
            shutil.rmtree(workdir / "models", ignore_errors=True)  # the generated model; the logs stay
    total = time.monotonic() - started
    print("\n" + summary(report, soak, options, args.quick, total, started_at), flush=True)
    logs = [str(s.log_path) for s in soak.stacks] if soak else []
    print(f"\nstack log{'s' if len(logs) > 1 else ''}: {', '.join(logs) or 'none'}", flush=True)
    if code:
        return code
    return 1 if any(not c.ok for c in report.checks) or not report.checks else 0


if __name__ == "__main__":
    sys.exit(main())
