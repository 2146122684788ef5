"""How a request names a language, which ones a deployment serves, and which model speaks each."""

from __future__ import annotations

import pytest

from tts_common.exceptions import UnsupportedLanguage
from tts_common.languages import ServedLanguages, canonical_code, language_name, model_id_for

SERVED = ServedLanguages(codes=("fin", "eng", "swh"), default="fin", overrides={"eng": "/opt/models/eng"})


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("fin", "fin"),
        ("FIN", "fin"),
        (" Fin ", "fin"),
        ("fi", "fin"),
        ("FI", "fin"),
        ("en", "eng"),
        ("swh", "swh"),
        ("yor", "yor"),
        ("yo", "yor"),
        # ISO 639-2/B codes resolve to their 639-3 form (no B code is another language's 639-3 code).
        ("fre", "fra"),
        ("ger", "deu"),
        # A 639-1 code of a macrolanguage names the macrolanguage, not MMS's individual language.
        ("sw", "swa"),
    ],
)
def test_a_code_resolves_to_its_iso_639_3_form(given: str, code: str) -> None:
    assert canonical_code(given) == code


@pytest.mark.parametrize("given", ["", "f", "xx", "zzz", "finnish", "fi-FI", "fin!", "12"])
def test_what_names_no_language_resolves_to_nothing(given: str) -> None:
    assert canonical_code(given) is None


def test_names_are_pycountrys_english_ones() -> None:
    assert [language_name(c) for c in ("fin", "eng", "yor")] == ["Finnish", "English", "Yoruba"]


@pytest.mark.parametrize(("given", "code"), [(None, "fin"), ("fi", "fin"), ("FIN", "fin"), ("EN", "eng")])
def test_a_request_resolves_to_a_served_language(given: str | None, code: str) -> None:
    assert SERVED.resolve(given) == code


@pytest.mark.parametrize("given", ["sv", "swe", "yor", "xx", "sw", ""])
def test_an_unserved_language_is_refused_naming_the_served_ones(given: str) -> None:
    with pytest.raises(UnsupportedLanguage) as raised:
        SERVED.resolve(given)
    assert raised.value.details == {"language": given, "supported": ["fin", "eng", "swh"]}
    assert "fin, eng, swh" in raised.value.message


def test_the_model_is_the_override_else_the_template() -> None:
    assert SERVED.model_id("fin") == "facebook/mms-tts-fin"
    assert SERVED.model_id("eng") == "/opt/models/eng"
    assert model_id_for("yor", template="org/tts-{language}-v2", overrides={}) == "org/tts-yor-v2"


def test_the_served_voices_are_listed_in_the_configured_order() -> None:
    assert [(v.code, v.name, v.model_id) for v in SERVED.voices()] == [
        ("fin", "Finnish", "facebook/mms-tts-fin"),
        ("eng", "English", "/opt/models/eng"),
        ("swh", "Swahili (individual language)", "facebook/mms-tts-swh"),
    ]


def test_the_default_must_be_served() -> None:
    with pytest.raises(ValueError, match="default"):
        ServedLanguages(codes=("fin",), default="eng")
