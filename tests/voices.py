"""Voices for tests: a VoiceSpec as the API builds it under the default settings, with any field changed."""

from __future__ import annotations

from typing import Any

from tts_common.voice import VoiceSpec

DEFAULT_MODEL = "facebook/mms-tts-fin"


def make_voice(**overrides: Any) -> VoiceSpec:
    fields: dict[str, Any] = {"language": "fin", "model_id": DEFAULT_MODEL, **overrides}
    return VoiceSpec(**fields)
