"""Domain rules: dedupe key, text validation, filename sanitizing, seeds and storage keys."""

from __future__ import annotations

import hashlib
import json
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tts_common.domain import (
    SynthesisParams,
    audio_key_for,
    content_disposition,
    dedupe_key,
    download_filename,
    normalize_text,
    seed_for,
    validate_custom_filename,
    validate_text,
)
from tts_common.exceptions import InvalidInput

PARAMS = SynthesisParams(model_id="facebook/mms-tts-fin", language="fi")


@given(st.text(min_size=1), st.sampled_from([" ", "  ", "\t", "\n", " \u00a0 "]))
def test_dedupe_key_ignores_whitespace_runs_and_edges(text: str, gap: str) -> None:
    words = text.split()
    assume(words)
    a = normalize_text(" ".join(words))
    b = normalize_text(gap + gap.join(words) + gap)
    assert dedupe_key(a, PARAMS) == dedupe_key(b, PARAMS)


def test_dedupe_key_is_nfc_normalized() -> None:
    composed, decomposed = "Hyvää päivää", "Hyva\u0308a\u0308 pa\u0308iva\u0308a\u0308"
    assert dedupe_key(normalize_text(composed), PARAMS) == dedupe_key(normalize_text(decomposed), PARAMS)


@pytest.mark.parametrize(
    "other",
    [
        SynthesisParams(model_id="facebook/mms-tts-eng", language="fi"),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="sv"),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="fi", speaking_rate=1.2),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="fi", noise_scale=0.5),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="fi", noise_scale_duration=0.5),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="fi", audio_format="flac"),
        SynthesisParams(model_id="facebook/mms-tts-fin", language="fi", max_piece_chars=200),
    ],
)
def test_everything_that_changes_the_audio_changes_the_key(other: SynthesisParams) -> None:
    assert dedupe_key("hei", PARAMS) != dedupe_key("hei", other)


def test_keys_made_before_the_piece_limit_was_keyed_stay_valid() -> None:
    # The payload every key was hashed from before max_piece_chars existed (its default was 400 throughout).
    legacy = json.dumps(
        {
            "text": "hei",
            "model_id": PARAMS.model_id,
            "language": PARAMS.language,
            "speaking_rate": PARAMS.speaking_rate,
            "noise_scale": PARAMS.noise_scale,
            "noise_scale_duration": PARAMS.noise_scale_duration,
            "audio_format": PARAMS.audio_format,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert PARAMS.max_piece_chars == 400
    assert dedupe_key("hei", PARAMS) == hashlib.sha256(legacy.encode("utf-8")).hexdigest()


@given(st.text(), st.text())
def test_different_texts_have_different_keys(a: str, b: str) -> None:
    assume(normalize_text(a) != normalize_text(b))
    assert dedupe_key(normalize_text(a), PARAMS) != dedupe_key(normalize_text(b), PARAMS)


@given(
    st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\u00a0\u2003\x00\x07\u200b\ufeff")), max_size=50)
)
def test_whitespace_or_control_only_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        validate_text(text, max_chars=10_000)


def test_text_limit_counts_characters_after_trimming() -> None:
    assert validate_text("  " + "a" * 10 + "  ", max_chars=10) == "a" * 10
    with pytest.raises(InvalidInput):
        validate_text("a" * 11, max_chars=10)


@given(st.text(min_size=0, max_size=40), st.sampled_from(["/", "\\", ".."]), st.text(max_size=40))
def test_path_like_filenames_are_refused(before: str, sep: str, after: str) -> None:
    with pytest.raises(InvalidInput):
        validate_custom_filename(before + sep + after)


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_ äöå", min_size=1, max_size=200))
def test_plain_names_are_accepted_and_get_a_wav_extension(name: str) -> None:
    assume(name.strip() and ".." not in name)
    accepted = validate_custom_filename(name)
    assert "/" not in download_filename(accepted, "t")
    assert download_filename(accepted, "t").endswith(".wav")


def test_filename_limits_and_control_characters() -> None:
    with pytest.raises(InvalidInput):
        validate_custom_filename("a" * 256)
    with pytest.raises(InvalidInput):
        validate_custom_filename("bad\x00name")
    assert validate_custom_filename("a" * 255) == "a" * 255


@given(st.text(min_size=1, max_size=100))
def test_content_disposition_is_a_single_safe_header_line(name: str) -> None:
    header = content_disposition(name)
    assert "\r" not in header
    assert "\n" not in header
    assert header.startswith('attachment; filename="')
    assert header.isascii()


def test_seeds_are_stable_and_differ_per_piece() -> None:
    key = dedupe_key("hei", PARAMS)
    assert seed_for(key) == seed_for(key)
    assert seed_for(key, 0) != seed_for(key, 1)
    assert 0 <= seed_for(key) < 2**63


def test_audio_key_is_derived_from_the_task() -> None:
    assert audio_key_for("abc") == audio_key_for("abc") == "audio/abc.wav"
