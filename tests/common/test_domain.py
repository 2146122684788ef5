"""Domain rules: text validation, filename sanitizing, storage keys and download names."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tts_common.domain import (
    audio_key_for,
    content_disposition,
    download_filename,
    validate_custom_filename,
    validate_text,
)
from tts_common.exceptions import InvalidInput
from tts_common.voice import FORMATS, AudioFormat


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
def test_plain_names_are_accepted_and_get_the_formats_extension(name: str) -> None:
    assume(name.strip() and ".." not in name)
    accepted = validate_custom_filename(name)
    for audio_format, facts in FORMATS.items():
        assert "/" not in download_filename(accepted, "t", audio_format)
        assert download_filename(accepted, "t", audio_format).endswith(f".{facts.extension}")


@pytest.mark.parametrize(
    ("custom", "audio_format", "expected"),
    [
        (None, AudioFormat.WAV, "tts-t1.wav"),
        (None, AudioFormat.MP3, "tts-t1.mp3"),
        (None, AudioFormat.OGG_OPUS, "tts-t1.opus"),
        (None, AudioFormat.OGG_VORBIS, "tts-t1.ogg"),
        (None, AudioFormat.PCM, "tts-t1.pcm"),
        ("greeting", AudioFormat.FLAC, "greeting.flac"),
        ("greeting.wav", AudioFormat.WAV, "greeting.wav"),
        ("greeting.WAV", AudioFormat.WAV, "greeting.wav"),
        ("greeting.wav", AudioFormat.MP3, "greeting.mp3"),
        ("report.v2", AudioFormat.MP3, "report.v2.mp3"),
    ],
)
def test_a_download_is_named_with_its_formats_extension(
    custom: str | None, audio_format: AudioFormat, expected: str
) -> None:
    assert download_filename(custom, "t1", audio_format) == expected


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


@pytest.mark.parametrize("audio_format", list(AudioFormat))
def test_audio_key_is_derived_from_the_task_and_named_by_its_format(audio_format: AudioFormat) -> None:
    key = audio_key_for("abc", audio_format)
    assert key == audio_key_for("abc", audio_format) == f"audio/abc.{FORMATS[audio_format].extension}"
