"""`tts`: speak a text with the service and save the audio; follow, list and fetch conversions.

Every command takes `--json` for scripts. Expected failures print one line and exit with the code of their
kind (tts_cli.errors.ExitCode); the key is read from a flag or TTS_API_KEY and never printed.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tts_cli.client import API_KEY_ENV, API_URL_ENV, DEFAULT_API_URL, ApiClient, Config
from tts_cli.errors import BadInput, CliError, ExitCode, TaskFailed
from tts_cli.waiting import wait_until_finished
from tts_common.domain import MarksFormat, TaskStatus
from tts_common.voice import FORMATS, SAMPLE_RATES, SPEED_MAX, SPEED_MIN, AudioFormat

LIST_LIMIT_MAX = 100

app = typer.Typer(
    name="tts",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    # A pretty traceback shows locals, the key among them: an unexpected error prints a plain one.
    pretty_exceptions_enable=False,
)


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = 200  # a pipe gets whole ids, not ellipses at 80 columns
    return console


err = _console(stderr=True)
out = _console(stderr=False)

P = ParamSpec("P")


def _report(exc: CliError) -> None:
    err.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        err.print(f"  {exc.hint}", soft_wrap=True, markup=False)


def handled(command: Callable[P, None]) -> Callable[P, None]:
    """An expected failure ends the command with one line and its kind's exit code, never a traceback."""

    @functools.wraps(command)
    def run_command(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CliError as exc:
            _report(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return run_command


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]


@app.callback()
def configure(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option("--api-url", envvar=API_URL_ENV, help="The API's base URL.", show_envvar=True)
    ] = DEFAULT_API_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar=API_KEY_ENV, help="The API key (sent as x-api-key).", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = Config(api_url=api_url, api_key=api_key or None)


def _client(ctx: typer.Context) -> ApiClient:
    config: Config = ctx.obj
    return ApiClient(config)


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _read_text(text: str | None, file: Path | None) -> str:
    if text is not None and file is not None:
        raise BadInput("give either a text or -f FILE, not both")
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read()
        try:
            return file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{file} is not UTF-8 text") from None
        except OSError as exc:
            raise BadInput(f"cannot read {file}: {exc.strerror or exc}") from None
    if text == "-":
        return sys.stdin.read()
    if text is None:
        raise BadInput("give a text, -f FILE, or - to read standard input")
    return text


def _format_from_name(output: Path | None) -> AudioFormat | None:
    """`-o aamu.mp3` without --format asks for mp3."""
    if output is None or str(output) == "-":
        return None
    suffix = output.suffix.lower().lstrip(".")
    matches = [fmt for fmt, facts in FORMATS.items() if facts.extension == suffix]
    return matches[0] if len(matches) == 1 else None


def _target(output: Path | None, filename: str) -> Path | None:
    """Where to save: -o as given (a directory gets the task's filename); none: the task's filename here.
    None means standard output (-o -)."""
    if output is None:
        return Path(filename)
    if str(output) == "-":
        return None
    if output.is_dir():
        return output / filename
    return output


def _save(client: ApiClient, task_id: str, output: Path | None) -> dict[str, Any]:
    link = client.download_link(task_id)
    target = _target(output, str(link["filename"]))
    if target is None:
        data = client.fetch(str(link["url"]))
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return {"file": "-", "bytes": len(data)}
    written = client.save(str(link["url"]), target)
    return {"file": str(target), "bytes": written}


def _failure(task: dict[str, Any]) -> TaskFailed:
    error = task.get("error") or {}
    reason = f"{error.get('message', 'no reason given')} ({error.get('code', 'unknown')})"
    return TaskFailed(f"conversion {task['conversion_id']} failed: {reason}")


def _describe_saved(task: dict[str, Any], saved: dict[str, Any]) -> str:
    facts = [f"{saved['bytes']:,} bytes"]
    if task.get("duration_s") is not None:
        facts.append(f"{task['duration_s']:.2f} s of audio")
    if task.get("sampling_rate"):
        facts.append(f"{task['sampling_rate']} Hz")
    return f"saved {saved['file']} ({', '.join(facts)})"


@app.command()
@handled
def say(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(help="The text to speak; - reads standard input.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="Read the text from a UTF-8 file (- for stdin).")
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="Language (fin, eng, fi, ...; see `tts voices`).")
    ] = None,
    fmt: Annotated[
        AudioFormat | None,
        typer.Option("--format", help="Audio format; default: from -o's extension, else the service's."),
    ] = None,
    speed: Annotated[
        float | None, typer.Option(min=SPEED_MIN, max=SPEED_MAX, help="Speaking rate (2.0: twice as fast).")
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", help=f"Output rate in Hz: {', '.join(str(r) for r in SAMPLE_RATES)}."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to save (a file, a directory, or - for stdout)."),
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit, print the id and return.")] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up waiting after this many seconds (exit 5).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Speak a text: submit it, wait with a progress bar, save the audio."""
    body: dict[str, Any] = {"text": _read_text(text, file)}
    chosen = fmt or _format_from_name(output)
    voice = {
        "language": lang,
        "format": str(chosen) if chosen else None,
        "speed": speed,
        "sample_rate": sample_rate,
    }
    body.update({name: value for name, value in voice.items() if value is not None})
    with _client(ctx) as client:
        accepted = client.submit(body)
        task_id = str(accepted["conversion_id"])
        if no_wait:
            if as_json:
                _emit_json(accepted)
            else:
                sys.stdout.write(task_id + "\n")
            return
        try:
            if not as_json:
                seen = " (already converted or queued)" if accepted.get("deduplicated") else ""
                err.print(f"conversion {task_id}{seen}")
            task = wait_until_finished(
                lambda: client.task(task_id), console=err, timeout_s=timeout, show=not as_json
            )
        except KeyboardInterrupt:
            raise Interrupted(task_id) from None
        if task["status"] != TaskStatus.DONE:
            raise _failure(task)
        saved = _save(client, task_id, output)
    if as_json:
        _emit_json({**task, **saved})
    elif saved["file"] != "-":
        err.print(_describe_saved(task, saved), soft_wrap=True)


class Interrupted(CliError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"stopped waiting; conversion {task_id} goes on in the service",
            hint=f"fetch it later: tts status {task_id}  /  tts download {task_id}",
        )


def _progress_text(task: dict[str, Any]) -> str:
    progress = task.get("progress")
    return f"{progress['pieces_done']}/{progress['pieces_total']}" if progress else ""


@app.command()
@handled
def status(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The conversion id.")],
    as_json: JsonFlag = False,
) -> None:
    """One conversion's status, progress and audio facts."""
    with _client(ctx) as client:
        task = client.task(task_id)
    if as_json:
        _emit_json(task)
        return
    table = Table.grid(padding=(0, 2))
    rows = [
        ("id", task["conversion_id"]),
        ("status", task["status"]),
        ("progress", f"{_progress_text(task)} pieces" if task.get("progress") else None),
        ("voice", f"{task['language']}, {task['format']}, speed {task['speed']}"),
        ("submitted", task.get("submitted_at")),
        ("completed", task.get("completed_at")),
        ("audio", f"{task['duration_s']:.2f} s, {task['sampling_rate']} Hz, {task['file_size']:,} bytes")
        if task.get("duration_s") is not None
        else None,
        ("error", f"{task['error']['message']} ({task['error']['code']})") if task.get("error") else None,
    ]
    for row in rows:
        if row is not None and row[1] is not None:
            name, value = row
            table.add_row(f"[bold]{name}[/bold]", str(value))
    out.print(table)


@app.command(name="list")
@handled
def list_tasks(
    ctx: typer.Context,
    status_filter: Annotated[TaskStatus | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=LIST_LIMIT_MAX, help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Your conversions, newest first."""
    with _client(ctx) as client:
        page = client.tasks(status=str(status_filter) if status_filter else None, limit=limit)
    if as_json:
        _emit_json(page)
        return
    items: list[dict[str, Any]] = page.get("items", [])
    if not items:
        err.print("no conversions")
        return
    table = Table("id", "status", "progress", "language", "format", "audio", "submitted", box=None)
    for task in items:
        duration = task.get("duration_s")
        table.add_row(
            task["conversion_id"],
            task["status"],
            _progress_text(task),
            task["language"],
            task["format"],
            f"{duration:.1f} s" if duration is not None else "",
            str(task["submitted_at"])[:19].replace("T", " "),
        )
    out.print(table)


@app.command()
@handled
def download(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The conversion id.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to save (a file, a directory, or - for stdout)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Save a done conversion's audio (default: its filename, here)."""
    with _client(ctx) as client:
        saved = _save(client, task_id, output)
        task = client.task(task_id) if saved["file"] != "-" else {}
    if as_json:
        _emit_json({"conversion_id": task_id, **saved})
    elif saved["file"] != "-":
        err.print(_describe_saved(task, saved), soft_wrap=True)


@app.command()
@handled
def marks(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The conversion id.")],
    fmt: Annotated[
        MarksFormat, typer.Option("--format", help="json (lines, as Polly writes them), vtt, srt, words.vtt.")
    ] = MarksFormat.VTT,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Save to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A done conversion's speech marks (when each sentence and word is spoken), as subtitles or JSON."""
    with _client(ctx) as client:
        link = client.marks_link(task_id, str(fmt))
        if output is not None and str(output) != "-":
            written = client.save(str(link["url"]), output)
            if as_json:
                _emit_json({**link, "file": str(output), "bytes": written})
            else:
                err.print(f"saved {output} ({written:,} bytes)")
            return
        if as_json:
            _emit_json(link)
            return
        data = client.fetch(str(link["url"]))
    sys.stdout.write(data.decode("utf-8"))


@app.command()
@handled
def voices(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The languages, formats and sample rates this service offers."""
    with _client(ctx) as client:
        offered = client.voices()
    if as_json:
        _emit_json(offered)
        return
    languages = Table("language", "name", "model", box=None, title="languages", title_justify="left")
    for voice in offered["languages"]:
        default = " (default)" if voice["code"] == offered["default_language"] else ""
        languages.add_row(voice["code"] + default, voice["name"], voice["model_id"])
    formats = Table("format", "extension", "sample rates", box=None, title="formats", title_justify="left")
    for entry in offered["formats"]:
        default = " (default)" if entry["format"] == offered["default_format"] else ""
        formats.add_row(
            entry["format"] + default, entry["extension"], ", ".join(str(r) for r in entry["sample_rates"])
        )
    out.print(languages)
    out.print()
    out.print(formats)
    out.print(f"\nspeed {offered['speed_min']} to {offered['speed_max']}, default {offered['default_speed']}")


def run() -> None:
    """The console script."""
    app()
