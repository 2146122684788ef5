"""Domain rules: task status order, dedupe key, seeds, storage keys, text and filename validation."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from tts_common.exceptions import InvalidInput


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


# How long texts were always split before the limit became a setting; a key without one means this.
DEFAULT_MAX_PIECE_CHARS = 400


@dataclass(frozen=True, slots=True)
class SynthesisParams:
    """Everything besides the text that changes the audio; all of it goes into the dedupe key."""

    model_id: str
    language: str
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    audio_format: str = "wav-pcm16"
    # A long text is spoken in pieces of at most this many characters, each with its own noise.
    max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS

    def as_dict(self) -> dict[str, str | float]:
        found: dict[str, str | float] = {
            "model_id": self.model_id,
            "language": self.language,
            "speaking_rate": self.speaking_rate,
            "noise_scale": self.noise_scale,
            "noise_scale_duration": self.noise_scale_duration,
            "audio_format": self.audio_format,
        }
        # Keys made before the piece limit was keyed used the default: they stay valid, and so do their seeds.
        if self.max_piece_chars != DEFAULT_MAX_PIECE_CHARS:
            found["max_piece_chars"] = self.max_piece_chars
        return found


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


def dedupe_key(normalized_text: str, params: SynthesisParams) -> str:
    """SHA-256 over the normalized text and every parameter that changes the audio."""
    payload = json.dumps(
        {"text": normalized_text, **params.as_dict()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def seed_for(key: str, piece: int = 0) -> int:
    """A 63-bit torch seed derived from the dedupe key (and a piece index for long texts)."""
    digest = hashlib.sha256(f"{key}:{piece}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


# The bucket's two key spaces; the CDK app scopes grants and lifecycle rules by these prefixes.
AUDIO_PREFIX = "audio/"
INPUTS_PREFIX = "inputs/"


def audio_key_for(task_id: str) -> str:
    """Where a task's audio lives in the bucket; a retry writes the same key."""
    return f"{AUDIO_PREFIX}{task_id}.wav"


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


def download_filename(custom_filename: str | None, task_id: str) -> str:
    """The name a download is saved under: the custom name with a .wav extension, or the task id."""
    base = custom_filename or f"tts-{task_id}"
    return base if base.lower().endswith(".wav") else f"{base}.wav"


def content_disposition(filename: str) -> str:
    """An attachment header safe for any filename: an ASCII fallback plus RFC 5987 UTF-8."""
    from urllib.parse import quote

    ascii_fallback = "".join(
        ch if (ch.isascii() and ch.isprintable() and ch not in '"\\;') else "_" for ch in filename
    )
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
