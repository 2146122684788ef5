"""`tts`, the command-line client, run as a user runs it (a subprocess, real HTTP) against the local stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf

from tests.e2e.conftest import ROOT, LocalStack, free_port
from tts_cli.errors import ExitCode

pytestmark = pytest.mark.e2e

# The console script when the package is installed (`pip install -e .`), else the same entry point.
_SCRIPT = Path(sys.executable).with_name("tts")
TTS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tts_cli"]
# About 2,000 characters: many pieces, several seconds of synthesis on the local stack's tiny models.
LONG_TEXT = " ".join(
    f"Tämä on pitkän tekstin lause numero {i}, joka puhutaan omana palanaan." for i in range(30)
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


Tts = Callable[..., Run]


@pytest.fixture(scope="module")
def env(local_stack: LocalStack) -> dict[str, str]:
    """A user's environment: the API's URL and key in TTS_API_URL / TTS_API_KEY, nothing on PYTHONPATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "PYTHONPATH"))}
    if not _SCRIPT.exists():  # not installed: the module runs from the checkout
        base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers/common"), str(ROOT)])
    return {**base, "TTS_API_URL": local_stack.url, "TTS_API_KEY": local_stack.key}


@pytest.fixture
def tts(env: dict[str, str], tmp_path: Path, local_stack: LocalStack) -> Tts:
    def run(*args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None) -> Run:
        done = subprocess.run(
            [*TTS, *args],
            cwd=tmp_path,
            env={**env, **(extra_env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = Run(done.returncode, done.stdout, done.stderr)
        # Whatever happened: no traceback, and the key never shows
        assert "Traceback" not in result.err, result.err
        assert local_stack.key not in result.out + result.err
        return result

    return run


def test_say_shows_progress_and_writes_a_valid_wav(tts: Tts, tmp_path: Path) -> None:
    # When: the README's first command
    result = tts("say", "Hyvää huomenta", "-o", "aamu.wav")

    # Then: the progress is reported (one line per change when not on a terminal) and the file is a WAV
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert lines[0].startswith("conversion ")
    assert any(line.startswith("done 1/1 pieces") for line in lines), result.err
    assert lines[-1].startswith("saved aamu.wav (")
    assert result.out == ""
    data, rate = sf.read(tmp_path / "aamu.wav", dtype="int16")
    assert rate == 16000
    assert len(data) > 0
    assert sf.info(tmp_path / "aamu.wav").format == "WAV"


def test_say_on_a_terminal_draws_a_progress_bar_with_pieces_elapsed_and_eta(tts: Tts, tmp_path: Path) -> None:
    # Given: a text of many pieces, on something Rich takes for a terminal
    result = tts("say", "-f", "-", stdin=LONG_TEXT, extra_env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"})

    assert result.code == 0, result.err
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.err)  # colours and cursor moves
    frames = [f for f in plain.replace("\r", "\n").splitlines() if "pieces" in f]
    assert frames, result.err
    assert "━" in frames[-1]
    assert "ETA" in frames[-1]
    total = int(frames[-1].split(" pieces")[0].split("/")[-1])
    assert total > 1
    assert f"{total}/{total} pieces" in frames[-1]
    # The default name comes from the task
    saved = [line for line in plain.splitlines() if line.startswith("saved ")]
    assert saved
    assert saved[0].startswith("saved tts-")
    assert len(list(tmp_path.glob("tts-*.wav"))) == 1


def test_say_from_stdin_in_a_format_named_by_the_output_with_json(tts: Tts, tmp_path: Path) -> None:
    result = tts(
        "say", "-", "-o", "kesä.mp3", "--lang", "fi", "--speed", "1.5", "--json", stdin="Hyvää kesää!"
    )

    assert result.code == 0, result.err
    body = result.json()
    assert body["status"] == "done"
    assert body["format"] == "mp3"
    assert body["language"] == "fin"
    assert body["speed"] == 1.5
    assert body["file"] == "kesä.mp3"
    assert body["bytes"] == (tmp_path / "kesä.mp3").stat().st_size == body["file_size"]
    assert sf.info(tmp_path / "kesä.mp3").format == "MP3"
    assert result.err == ""  # --json: nothing but the JSON


def test_no_wait_then_status_list_and_download(tts: Tts, tmp_path: Path) -> None:
    # Given: a submission that does not wait
    submitted = tts("say", "Odottamaton lause.", "--no-wait", "--format", "flac", "--sample-rate", "24000")
    assert submitted.code == 0, submitted.err
    task_id = submitted.out.strip()
    assert len(task_id) == 32

    # When: the user follows it
    deadline = time.monotonic() + 60
    while (status := tts("status", task_id, "--json")).json()["status"] != "done":
        assert status.code == 0
        assert time.monotonic() < deadline, status.out
        time.sleep(0.3)
    shown = tts("status", task_id)
    listed = tts("list", "--limit", "5")
    listed_json = tts("list", "--status", "done", "--limit", "100", "--json")
    (tmp_path / "out").mkdir()
    downloaded = tts("download", task_id, "-o", "out")

    # Then
    assert shown.code == 0
    assert f"id         {task_id}" in shown.out
    assert "flac, speed 1.0" in shown.out
    assert listed.code == 0
    header, *rows = listed.out.splitlines()
    assert header.split() == ["id", "status", "progress", "language", "format", "audio", "submitted"]
    assert any(row.split()[:2] == [task_id, "done"] for row in rows), listed.out
    assert task_id in [item["conversion_id"] for item in listed_json.json()["items"]]
    assert {item["status"] for item in listed_json.json()["items"]} == {"done"}
    assert downloaded.code == 0, downloaded.err
    audio = tmp_path / "out" / f"tts-{task_id}.flac"
    assert sf.info(audio).samplerate == 24000


def test_voices_lists_the_served_languages_and_formats(tts: Tts) -> None:
    table = tts("voices")
    body = tts("voices", "--json").json()

    assert table.code == 0
    assert "fin (default)" in table.out
    assert "ogg_opus" in table.out
    assert [lang["code"] for lang in body["languages"]] == ["fin", "eng", "swh"]


def test_marks_of_a_done_task_as_webvtt(tts: Tts) -> None:
    said = tts("say", "Hyvää huomenta. Mitä kuuluu?", "-o", "marks.wav", "--json")
    assert said.code == 0, said.err

    result = tts("marks", said.json()["conversion_id"], "--format", "vtt")

    assert result.code == 0, result.err
    assert result.out.startswith("WEBVTT")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["say"], None, "give a text, -f FILE, or - to read standard input"),
        (["say", "hei", "-f", "x.txt"], None, "not both"),
        (["say", "-f", "missing.txt"], None, "cannot read missing.txt"),
        (["say", "-"], "   \n", "text is empty"),  # refused by the API: 422
        (["say", "hei", "--format", "ogg_opus", "--sample-rate", "22050"], None, "sample_rate"),  # 422
        (["say", "hei", "--lang", "yor"], None, "unsupported_language"),  # 422
        (["say", "hei", "--speed", "9"], None, "--speed"),  # refused by the command line itself
        (["list", "--limit", "0"], None, "--limit"),
        (["status", "a/b"], None, "not a conversion id"),
    ],
)
def test_bad_input_exits_2_with_one_line(tts: Tts, args: list[str], stdin: str | None, message: str) -> None:
    result = tts(*args, stdin=stdin)

    assert result.code == ExitCode.BAD_INPUT == 2, result.err
    assert message in result.err


@pytest.mark.parametrize("key", ["tts_not_a_key_of_this_stack_0000", ""])
def test_a_wrong_or_missing_key_exits_3(tts: Tts, key: str) -> None:
    result = tts("list", extra_env={"TTS_API_KEY": key})

    assert result.code == ExitCode.AUTH == 3, result.err
    assert result.err.startswith("error: not authorized:")
    assert "TTS_API_KEY" in result.err  # how to fix it
    assert len(result.err.strip().splitlines()) == 2


def test_a_flag_overrides_the_environment(tts: Tts) -> None:
    result = tts("--api-key", "tts_not_a_key_of_this_stack_0000", "list")

    assert result.code == ExitCode.AUTH


@pytest.mark.parametrize("command", ["status", "download", "marks"])
def test_an_unknown_id_exits_4(tts: Tts, command: str) -> None:
    result = tts(command, "0" * 32)

    assert result.code == ExitCode.NOT_FOUND == 4, result.err
    assert result.err.strip().splitlines() == [f"error: No conversion with id '{'0' * 32}' (task_not_found)"]


def _unfinishable_soon(opening: str) -> str:
    """A text no stack finishes within a second or two: ~70,000 characters (two workers on tiny-random take
    several seconds), each call's its own so that no dedupe hit finds an earlier, finished task."""
    return opening + " " + " ".join(f"{LONG_TEXT} {i}." for i in range(33))


def test_a_download_before_done_and_a_wait_past_its_timeout_exit_5(tts: Tts) -> None:
    # Given: a long text, just submitted (long enough that it cannot be done by the next command)
    submitted = tts("say", "-", "--no-wait", "--lang", "eng", stdin=_unfinishable_soon("Not ready yet."))
    task_id = submitted.out.strip()

    early = tts("download", task_id)
    waited = tts("say", "-", "--lang", "eng", "--timeout", "0.5", stdin=_unfinishable_soon("Still waiting."))

    assert early.code == ExitCode.NOT_READY == 5, early.err
    assert "task_not_ready" in early.err
    assert waited.code == ExitCode.NOT_READY, waited.err
    assert "error: still " in waited.err


def test_an_unreachable_api_exits_7(tts: Tts) -> None:
    result = tts("--api-url", f"http://127.0.0.1:{free_port()}", "voices")

    assert result.code == ExitCode.SERVER == 7, result.err
    assert "cannot reach the API at http://127.0.0.1:" in result.err
    assert "TTS_API_URL" in result.err


def test_ctrl_c_while_waiting_leaves_the_task_and_says_how_to_fetch_it(
    env: dict[str, str], tmp_path: Path, tts: Tts
) -> None:
    # Given: a long conversion being waited for
    (tmp_path / "long.txt").write_text("Ctrl-C. " + LONG_TEXT, encoding="utf-8")
    proc = subprocess.Popen(
        [*TTS, "say", "-f", "long.txt", "--lang", "swh"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("conversion "), first
    task_id = first.split()[1]

    # When: the user presses Ctrl-C
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)

    # Then: a clean stop that names the task, which goes on in the service
    assert proc.returncode == ExitCode.INTERRUPTED == 130
    assert "Traceback" not in rest
    assert f"stopped waiting; conversion {task_id} goes on in the service" in rest
    assert f"tts download {task_id}" in rest
    assert tts("status", task_id, "--json").code == 0
