"""Which languages a deployment speaks, how a request names one, and which model speaks it.

Codes are ISO 639-3, as MMS names its models (facebook/mms-tts-fin, -eng, -swh). A request may also use the
ISO 639-1 form where one exists (`fi`) or the ISO 639-2/B form (`fre`, `ger`: no B code is another language's
639-3 code), in any case; both resolve to the 639-3 code. The code table is pycountry's, not a hand list.
A 639-1 code of a macrolanguage resolves to the macrolanguage (`sw` is `swa`, while MMS speaks `swh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pycountry

from tts_common.exceptions import UnsupportedLanguage

DEFAULT_MODEL_TEMPLATE = "facebook/mms-tts-{language}"
TEMPLATE_FIELD = "{language}"


def canonical_code(value: str) -> str | None:
    """The ISO 639-3 code `value` names (639-3, 639-1 or 639-2/B, any case), or None if it names none."""
    text = value.strip().lower()
    if len(text) == 2:
        found = pycountry.languages.get(alpha_2=text)
    elif len(text) == 3:
        found = pycountry.languages.get(alpha_3=text) or pycountry.languages.get(bibliographic=text)
    else:
        return None
    return str(found.alpha_3) if found is not None else None


def language_name(code: str) -> str:
    """The English name of a 639-3 code (pycountry's), or the code itself if the table lacks it."""
    found = pycountry.languages.get(alpha_3=code)
    return str(found.name) if found is not None else code


def model_id_for(code: str, *, template: str, overrides: Mapping[str, str]) -> str:
    """The model that speaks `code`: its override, else the template filled in."""
    return overrides.get(code) or template.replace(TEMPLATE_FIELD, code)


@dataclass(frozen=True, slots=True)
class ServedVoice:
    code: str
    name: str
    model_id: str


@dataclass(frozen=True, slots=True)
class ServedLanguages:
    """The deployment's languages (canonical 639-3 codes, in the configured order) and their models."""

    codes: tuple[str, ...]
    default: str
    template: str = DEFAULT_MODEL_TEMPLATE
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.codes or self.default not in self.codes:
            raise ValueError("the default language must be one of the served ones")

    def resolve(self, requested: str | None) -> str:
        """The served 639-3 code a request names (None: the default); UnsupportedLanguage otherwise."""
        if requested is None:
            return self.default
        code = canonical_code(requested)
        if code is None or code not in self.codes:
            served = list(self.codes)
            known = f" ({code})" if code is not None and code != requested.strip().lower() else ""
            raise UnsupportedLanguage(
                f"language {requested!r}{known} is not served here; served: {', '.join(served)}",
                details={"language": requested, "supported": served},
            )
        return code

    def model_id(self, code: str) -> str:
        return model_id_for(code, template=self.template, overrides=self.overrides)

    def voices(self) -> list[ServedVoice]:
        return [ServedVoice(code=c, name=language_name(c), model_id=self.model_id(c)) for c in self.codes]
