"""/api/v1/voices: what a request may ask for here (languages, formats, sample rates, speed)."""

from __future__ import annotations

from fastapi import APIRouter

from tts_api.deps import SettingsDep
from tts_api.errors import error_responses
from tts_api.schemas import Voices

router = APIRouter(prefix="/api/v1", tags=["voices"])


@router.get(
    "/voices",
    response_model=Voices,
    responses=error_responses(),
    summary="The languages this deployment serves, and the formats and sample rates it delivers",
    description="Everything a conversion's voice may be: `language` one of `languages[].code`, `format` one "
    "of `formats[].format` with a `sample_rate` from that format's `sample_rates`, `speed` within "
    "`speed_min`..`speed_max`. Answered from the deployment's settings; it calls no dependency.",
)
def list_voices(settings: SettingsDep) -> Voices:
    return Voices.build(
        languages=settings.languages, default_format=settings.tts_format, default_speed=settings.tts_speed
    )
