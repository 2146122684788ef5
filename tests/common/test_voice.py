"""The voice spec: its bounds, the dedupe key (text + whole spec) and the seeds (text + waveform fields)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.voices import make_voice
from tts_common.domain import normalize_text
from tts_common.voice import (
    FORMATS,
    SAMPLE_RATES,
    WAVEFORM_FIELDS,
    AudioFormat,
    VoiceSpec,
    dedupe_key,
    rates_for,
    seed_for,
    waveform_key,
)

TENANT = "acme"

VOICE = make_voice()

_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "language": st.sampled_from(["fin", "eng", "swh", "yor", "fra"]),
    "model_id": st.sampled_from(["facebook/mms-tts-fin", "facebook/mms-tts-eng", "/opt/models/fin", "x"]),
    "speed": st.floats(0.25, 4.0),
    "noise_scale": st.floats(0.0, 2.0),
    "noise_scale_duration": st.floats(0.0, 2.0),
    "format": st.sampled_from(list(AudioFormat)),
    "sample_rate": st.none() | st.sampled_from(SAMPLE_RATES),
    "max_piece_chars": st.integers(20, 5000),
}


@st.composite
def voices(draw: st.DrawFn) -> VoiceSpec:
    fields = {name: draw(values) for name, values in _FIELD_VALUES.items() if name != "sample_rate"}
    fields["sample_rate"] = draw(st.none() | st.sampled_from(rates_for(fields["format"])))
    return VoiceSpec(**fields)


@st.composite
def one_field_changed(draw: st.DrawFn) -> tuple[VoiceSpec, VoiceSpec, str]:
    """A voice, the same voice with one field changed (to a value the spec accepts), and that field."""
    voice = draw(voices())
    name = draw(st.sampled_from(sorted(_FIELD_VALUES)))
    value = draw(_FIELD_VALUES[name].filter(lambda v: v != getattr(voice, name)))
    changed = {**voice.model_dump(), name: value}
    if name == "format" and voice.sample_rate is not None:
        assume(voice.sample_rate in rates_for(value))
    if name == "sample_rate" and value is not None:
        assume(value in rates_for(voice.format))
    return voice, VoiceSpec(**changed), name


@given(one_field_changed(), st.text(max_size=50))
def test_the_dedupe_key_changes_with_every_field_of_the_spec(
    case: tuple[VoiceSpec, VoiceSpec, str], text: str
) -> None:
    voice, other, _ = case
    assert dedupe_key(text, voice, tenant_id=TENANT) != dedupe_key(text, other, tenant_id=TENANT)


@given(one_field_changed(), st.text(max_size=50))
def test_the_seeds_change_with_the_waveform_fields_only(
    case: tuple[VoiceSpec, VoiceSpec, str], text: str
) -> None:
    # Format and sample rate only encode the waveform: the same text in wav and mp3 is the same speech.
    voice, other, name = case
    same = waveform_key(text, voice) == waveform_key(text, other)
    assert same is (name not in WAVEFORM_FIELDS)
    assert (seed_for(waveform_key(text, voice), 3) == seed_for(waveform_key(text, other), 3)) is same


def test_the_waveform_fields_are_the_spec_less_format_and_rate() -> None:
    assert set(WAVEFORM_FIELDS) == set(VoiceSpec.model_fields) - {"format", "sample_rate"}


@given(st.text(min_size=1), st.sampled_from([" ", "  ", "\t", "\n", " \u00a0 "]))
def test_the_dedupe_key_ignores_whitespace_runs_and_edges(text: str, gap: str) -> None:
    words = text.split()
    assume(words)
    a = normalize_text(" ".join(words))
    b = normalize_text(gap + gap.join(words) + gap)
    assert dedupe_key(a, VOICE, tenant_id=TENANT) == dedupe_key(b, VOICE, tenant_id=TENANT)


def test_the_dedupe_key_is_nfc_normalized() -> None:
    composed, decomposed = "Hyvää päivää", "Hyva\u0308a\u0308 pa\u0308iva\u0308a\u0308"
    assert dedupe_key(normalize_text(composed), VOICE, tenant_id=TENANT) == dedupe_key(
        normalize_text(decomposed), VOICE, tenant_id=TENANT
    )


@given(st.text(), st.text())
def test_different_texts_have_different_keys_and_seeds(a: str, b: str) -> None:
    assume(normalize_text(a) != normalize_text(b))
    assert dedupe_key(normalize_text(a), VOICE, tenant_id=TENANT) != dedupe_key(
        normalize_text(b), VOICE, tenant_id=TENANT
    )
    assert waveform_key(normalize_text(a), VOICE) != waveform_key(normalize_text(b), VOICE)


def test_seeds_are_stable_and_differ_per_piece() -> None:
    key = waveform_key("hei", VOICE)
    assert seed_for(key) == seed_for(key)
    assert seed_for(key, 0) != seed_for(key, 1)
    assert 0 <= seed_for(key) < 2**63


@given(voices())
def test_a_voice_survives_its_json_unchanged(voice: VoiceSpec) -> None:
    # The task record and the job carry it as JSON: keys and seeds must not drift through it.
    again = VoiceSpec.model_validate_json(voice.model_dump_json())
    assert again == voice
    assert dedupe_key("hei", again, tenant_id=TENANT) == dedupe_key("hei", voice, tenant_id=TENANT)


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "ogg_opus", "sample_rate": 22050},
        {"format": "ogg_opus", "sample_rate": 44100},
        {"sample_rate": 11025},
        {"speed": 0.2},
        {"speed": 4.5},
        {"speed": float("nan")},
        {"noise_scale": -0.1},
        {"max_piece_chars": 19},
        {"language": "fi"},
        {"language": "FIN"},
        {"format": "m4a"},
        {"pitch": 1.0},
    ],
)
def test_a_voice_outside_the_bounds_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_voice(**fields)


@pytest.mark.parametrize(
    ("audio_format", "asked", "native", "delivered"),
    [
        (AudioFormat.WAV, None, 16_000, 16_000),
        (AudioFormat.WAV, 44_100, 16_000, 44_100),
        (AudioFormat.OGG_OPUS, None, 16_000, 16_000),
        (AudioFormat.OGG_OPUS, None, 22_050, 24_000),
        (AudioFormat.OGG_OPUS, 48_000, 22_050, 48_000),
    ],
)
def test_the_output_rate_is_the_asked_one_else_the_native_one_the_format_holds(
    audio_format: AudioFormat, asked: int | None, native: int, delivered: int
) -> None:
    assert make_voice(format=audio_format, sample_rate=asked).output_rate(native) == delivered


def test_every_format_accepts_some_rates_and_opus_only_its_own() -> None:
    assert rates_for(AudioFormat.OGG_OPUS) == (8000, 16000, 24000, 48000)
    assert all(rates_for(f) == SAMPLE_RATES for f in FORMATS if f is not AudioFormat.OGG_OPUS)


def test_the_dedupe_key_is_per_tenant() -> None:
    assert dedupe_key("hei", VOICE, tenant_id="acme") != dedupe_key("hei", VOICE, tenant_id="globex")
    assert dedupe_key("hei", VOICE, tenant_id="acme") == dedupe_key("hei", VOICE, tenant_id="acme")
