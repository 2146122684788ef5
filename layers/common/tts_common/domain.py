"""Domain rules: task status order, storage keys, text and filename validation.

The dedupe key and the seeds come from the voice (tts_common.voice).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
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
# A long text's parts (fan-out): raw native-rate PCM and a manifest per part, until the join has written
# the task's audio (the CDK app expires the prefix after 2 days as the backstop).
PARTS_PREFIX = "parts/"


def part_audio_key(task_id: str, part: int) -> str:
    """Part `part` (0-based) of a fanned-out task: s16le mono PCM at the model's native rate."""
    return f"{PARTS_PREFIX}{task_id}/{part:05d}.pcm"


def part_manifest_key(task_id: str, part: int) -> str:
    """The part's manifest (JSON: piece frames, pauses, timings); written after its audio, it commits it."""
    return f"{PARTS_PREFIX}{task_id}/{part:05d}.json"


def audio_key_for(task_id: str, audio_format: AudioFormat) -> str:
    """Where a task's audio lives in the bucket, named by its format; a retry writes the same key."""
    return f"{AUDIO_PREFIX}{task_id}.{FORMATS[audio_format].extension}"


class MarksFormat(StrEnum):
    """The timing files written beside a task's audio (speech marks and subtitles)."""

    JSON = "json"  # speech marks as Amazon Polly writes them: JSON lines, byte offsets into the text
    VTT = "vtt"  # WebVTT, one cue per sentence (long ones cut)
    SRT = "srt"  # SubRip, the same cues
    WORDS_VTT = "words.vtt"  # WebVTT, one cue per word


@dataclass(frozen=True, slots=True)
class MarksFacts:
    extension: str
    content_type: str


MARKS_FORMATS: dict[MarksFormat, MarksFacts] = {
    MarksFormat.JSON: MarksFacts("marks.jsonl", "application/x-json-stream"),
    MarksFormat.VTT: MarksFacts("vtt", "text/vtt; charset=utf-8"),
    MarksFormat.SRT: MarksFacts("srt", "application/x-subrip; charset=utf-8"),
    MarksFormat.WORDS_VTT: MarksFacts("words.vtt", "text/vtt; charset=utf-8"),
}


def marks_key_for(task_id: str, marks_format: MarksFormat) -> str:
    """Where a task's marks in one format live: beside its audio (same prefix, so the same grants and
    expiry), named by the task; a retry writes the same key."""
    return f"{AUDIO_PREFIX}{task_id}.{MARKS_FORMATS[marks_format].extension}"


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


def marks_filename(custom_filename: str | None, task_id: str, marks_format: MarksFormat) -> str:
    """The name marks are saved under: the audio's name with the marks' extension (`greeting.vtt`)."""
    audio_name = download_filename(custom_filename, task_id, AudioFormat.WAV)
    return f"{audio_name.removesuffix('.wav')}.{MARKS_FORMATS[marks_format].extension}"


def content_disposition(filename: str) -> str:
    """An attachment header safe for any filename: an ASCII fallback plus RFC 5987 UTF-8."""
    from urllib.parse import quote

    ascii_fallback = "".join(
        ch if (ch.isascii() and ch.isprintable() and ch not in '"\\;') else "_" for ch in filename
    )
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
