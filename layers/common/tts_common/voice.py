"""The voice of a task: one spec, chosen per request, stored on the task, carried in the job, spoken.

Everything that changes the audio is here and nowhere else. The dedupe key hashes the normalized text with
the whole spec; the seeds hash the text with only what shapes the waveform (`WAVEFORM_FIELDS`), so the same
text in `wav` and in `mp3`, or at 16 and at 24 kHz, is the same speech.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# MMS names its models by ISO 639-3 code (facebook/mms-tts-fin, -eng, -swh, ...).
LANGUAGE_CODE_PATTERN = r"^[a-z]{3}$"

SPEED_MIN, SPEED_MAX = 0.25, 4.0
NOISE_MAX = 2.0
DEFAULT_NOISE_SCALE = 0.667
DEFAULT_NOISE_SCALE_DURATION = 0.8
# A long text is spoken in pieces of at most this many characters, each with its own seed.
DEFAULT_MAX_PIECE_CHARS = 400
MIN_PIECE_CHARS, MAX_PIECE_CHARS = 20, 5000

# Rates a request may ask for; without one the audio keeps the model's native rate (16 kHz for MMS).
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


class AudioFormat(StrEnum):
    WAV = "wav"  # RIFF WAVE, PCM 16-bit
    FLAC = "flac"
    OGG_OPUS = "ogg_opus"
    OGG_VORBIS = "ogg_vorbis"
    MP3 = "mp3"
    PCM = "pcm"  # raw signed 16-bit little-endian samples, no header (as Polly's pcm)
    AAC = "aac"  # AAC-LC in ADTS frames (FFmpeg's native encoder through PyAV, the worker's `av`)


@dataclass(frozen=True, slots=True)
class FormatFacts:
    extension: str
    content_type: str
    # The sample rates the container can hold; None: any of SAMPLE_RATES.
    sample_rates: frozenset[int] | None = None


FORMATS: dict[AudioFormat, FormatFacts] = {
    AudioFormat.WAV: FormatFacts("wav", "audio/wav"),
    AudioFormat.FLAC: FormatFacts("flac", "audio/flac"),
    AudioFormat.OGG_OPUS: FormatFacts("opus", "audio/ogg", frozenset({8000, 12000, 16000, 24000, 48000})),
    AudioFormat.OGG_VORBIS: FormatFacts("ogg", "audio/ogg"),
    AudioFormat.MP3: FormatFacts("mp3", "audio/mpeg"),
    AudioFormat.PCM: FormatFacts("pcm", "audio/pcm"),
    AudioFormat.AAC: FormatFacts("aac", "audio/aac"),
}

# The fields that shape the waveform itself; format and sample rate only encode it.
WAVEFORM_FIELDS = ("language", "model_id", "speed", "noise_scale", "noise_scale_duration", "max_piece_chars")


class VoiceSpec(BaseModel):
    """How a text is spoken and delivered. Built at submit from the request and the deployment's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: Annotated[str, Field(pattern=LANGUAGE_CODE_PATTERN, description="ISO 639-3, as MMS names it")]
    model_id: Annotated[str, Field(min_length=1, max_length=256)]
    speed: Annotated[float, Field(ge=SPEED_MIN, le=SPEED_MAX, allow_inf_nan=False)] = 1.0
    noise_scale: Annotated[float, Field(ge=0, le=NOISE_MAX, allow_inf_nan=False)] = DEFAULT_NOISE_SCALE
    noise_scale_duration: Annotated[float, Field(ge=0, le=NOISE_MAX, allow_inf_nan=False)] = (
        DEFAULT_NOISE_SCALE_DURATION
    )
    format: AudioFormat = AudioFormat.WAV
    # None: the model's native rate.
    sample_rate: int | None = None
    max_piece_chars: Annotated[int, Field(ge=MIN_PIECE_CHARS, le=MAX_PIECE_CHARS)] = DEFAULT_MAX_PIECE_CHARS

    @model_validator(mode="after")
    def _rate_fits_the_format(self) -> Self:
        if self.sample_rate is not None:
            check_sample_rate(self.format, self.sample_rate)
        return self

    @property
    def facts(self) -> FormatFacts:
        return FORMATS[self.format]

    def output_rate(self, native_rate: int) -> int:
        """The rate the delivered audio has: the asked one, else the native one if the format holds it, else
        the nearest rate the format holds (Opus cannot hold 22.05 kHz)."""
        if self.sample_rate is not None:
            return self.sample_rate
        allowed = self.facts.sample_rates
        if allowed is None or native_rate in allowed:
            return native_rate
        return min(allowed, key=lambda rate: (abs(rate - native_rate), -rate))

    def waveform_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in WAVEFORM_FIELDS}


class UnsupportedSampleRate(ValueError):
    """A sample rate outside SAMPLE_RATES, or one the format cannot hold."""


def check_sample_rate(audio_format: AudioFormat, rate: int) -> None:
    if rate not in SAMPLE_RATES:
        raise UnsupportedSampleRate(
            f"sample_rate {rate} is not one of {', '.join(str(r) for r in SAMPLE_RATES)}"
        )
    allowed = FORMATS[audio_format].sample_rates
    if allowed is not None and rate not in allowed:
        raise UnsupportedSampleRate(
            f"{audio_format.value} cannot hold {rate} Hz; ask for one of "
            + ", ".join(str(r) for r in rates_for(audio_format))
        )


def rates_for(audio_format: AudioFormat) -> tuple[int, ...]:
    """The SAMPLE_RATES a request may ask for in this format."""
    allowed = FORMATS[audio_format].sample_rates
    return tuple(rate for rate in SAMPLE_RATES if allowed is None or rate in allowed)


def _digest(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def dedupe_key(
    normalized_text: str, voice: VoiceSpec, *, tenant_id: str, client_request: Mapping[str, Any] | None = None
) -> str:
    """SHA-256 over the tenant, the normalized text and the whole voice: two submissions share a task only
    if they come from one tenant and every byte of their audio would be the same. Another tenant's identical
    text is another task, so no tenant learns from a dedupe hit (or its timing) what another submitted.
    A compatibility API's request fields (Task.client_request) are hashed in too, so tasks that share a key
    echo the same request; without them the key is as it always was."""
    payload = {"tenant": tenant_id, "text": normalized_text, **voice.model_dump(mode="json")}
    if client_request:
        payload["client_request"] = dict(client_request)
    return _digest(payload)


def waveform_key(normalized_text: str, voice: VoiceSpec) -> str:
    """SHA-256 over the normalized text and what shapes the waveform: the seeds come from it."""
    return _digest({"text": normalized_text, **voice.waveform_fields()})


def seed_for(key: str, piece: int = 0) -> int:
    """A 63-bit torch seed for one piece of a text, from its waveform key and the piece's place."""
    digest = hashlib.sha256(f"{key}:{piece}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
