"""Domain rules: task status order, storage keys, text and filename validation.

The dedupe key and the seeds come from the voice (tts_common.voice).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from tts_common.exceptions import InvalidInput
from tts_common.voice import FORMATS, AudioFormat


class TaskStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    DONE = "done"
    FAILED = "failed"


# A status never moves backwards. FAILED ranks below DONE so that a redriven job that succeeds
# after all (e.g. from the DLQ) ends DONE, while a late FAILED can never undo a DONE.
STATUS_RANK: dict[TaskStatus, int] = {
    TaskStatus.QUEUED: 0,
    TaskStatus.PROCESSING: 1,
    TaskStatus.COMPLETED: 2,
    TaskStatus.FAILED: 3,
    TaskStatus.DONE: 4,
}

TERMINAL_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED})


def later_status(a: TaskStatus, b: TaskStatus) -> TaskStatus:
    """The status a record holds after seeing both: the further one along."""
    return a if STATUS_RANK[a] >= STATUS_RANK[b] else b


_WHITESPACE = re.compile(r"\s+")
# C* categories except the whitespace that _WHITESPACE collapses.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def normalize_text(text: str) -> str:
    """NFC, control characters dropped, runs of whitespace collapsed to one space, trimmed."""
    nfc = unicodedata.normalize("NFC", text)
    no_controls = "".join(
        ch for ch in nfc if ch.isspace() or unicodedata.category(ch) not in _CONTROL_CATEGORIES
    )
    return _WHITESPACE.sub(" ", no_controls).strip()


def validate_text(text: str, *, max_chars: int) -> str:
    """Return the normalized text, or raise InvalidInput when it is empty or too long."""
    normalized = normalize_text(text)
    if not normalized:
        raise InvalidInput("text is empty, or only whitespace or control characters")
    if len(normalized) > max_chars:
        raise InvalidInput(
            f"text has {len(normalized)} characters after trimming; the limit is {max_chars}",
            details={"length": len(normalized), "max_chars": max_chars},
        )
    return normalized


# The bucket's key spaces; the CDK app scopes grants and lifecycle rules by these prefixes.
AUDIO_PREFIX = "audio/"
INPUTS_PREFIX = "inputs/"
# The model store: saved model directories under this prefix of a bucket (the audio bucket by default).
MODEL_STORE_PREFIX = "models/"


def audio_key_for(task_id: str, audio_format: AudioFormat) -> str:
    """Where a task's audio lives in the bucket, named by its format; a retry writes the same key."""
    return f"{AUDIO_PREFIX}{task_id}.{FORMATS[audio_format].extension}"


def text_key_for(task_id: str) -> str:
    """Where a task's input text lives when it is too large to ride in the job message."""
    return f"{INPUTS_PREFIX}{task_id}.txt"


MAX_FILENAME_CHARS = 255
_PATHLIKE = re.compile(r"[/\\]")


def validate_custom_filename(name: str) -> str:
    """Accept a plain file name only; anything path-like or with control characters is refused."""
    if not name or not name.strip():
        raise InvalidInput("custom_filename is empty")
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidInput(f"custom_filename is longer than {MAX_FILENAME_CHARS} characters")
    if _PATHLIKE.search(name) or ".." in name:
        raise InvalidInput("custom_filename must be a plain name, not a path")
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in name):
        raise InvalidInput("custom_filename contains control characters")
    if name.strip() in {".", ".."}:
        raise InvalidInput("custom_filename must be a plain name, not a path")
    return name.strip()


# Extensions a custom name may carry that belong to another format: replaced rather than doubled.
_AUDIO_EXTENSIONS = frozenset(f".{facts.extension}" for facts in FORMATS.values())


def download_filename(custom_filename: str | None, task_id: str, audio_format: AudioFormat) -> str:
    """The name a download is saved under: the custom name (else `tts-{id}`) with the format's extension.
    An audio extension of another format is replaced (`greeting.wav` as mp3 is `greeting.mp3`)."""
    base = custom_filename or f"tts-{task_id}"
    extension = f".{FORMATS[audio_format].extension}"
    stem, dot, suffix = base.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in _AUDIO_EXTENSIONS:
        base = stem
    return f"{base}{extension}"


def content_disposition(filename: str) -> str:
    """An attachment header safe for any filename: an ASCII fallback plus RFC 5987 UTF-8."""
    from urllib.parse import quote

    ascii_fallback = "".join(
        ch if (ch.isascii() and ch.isprintable() and ch not in '"\\;') else "_" for ch in filename
    )
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
