"""Speech marks and subtitles from the durations the model itself gave every token.

Input: the task's text and, for each spoken piece, where it starts in the text, where its audio starts in
the joined audio (native-rate frames, pauses included: AudioAssembler.piece_starts) and its TokenTiming.
Every character the tokenizer kept gets the frames of its token plus the blank after it (add_blank); a
word runs from its first kept character's start to its last one's end, a sentence likewise over all of its
characters. Speed is already in the durations, and resampling keeps time, so times are milliseconds of the
delivered audio. Offsets are into the task's text (the submitted text after NFC and whitespace
collapsing), as UTF-8 byte offsets in the Polly JSON lines.

Output (MarksFormat): Polly speech marks (sentence and word), WebVTT and SRT with one cue per sentence
(long sentences cut between words), and a word-level WebVTT.
"""

from __future__ import annotations

import itertools
import json
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tts_common.domain import MarksFormat
from tts_worker.synthesizer.base import TokenTiming
from tts_worker.text_split import sentence_spans

# A cue holds at most two lines of this many characters, and at most this long a stretch of speech.
CUE_LINE_CHARS = 42
CUE_MAX_CHARS = 2 * CUE_LINE_CHARS
CUE_MAX_MS = 7000

_RUN = re.compile(r"\S+")

MarkType = Literal["sentence", "word"]


@dataclass(frozen=True, slots=True)
class SpokenPiece:
    """One synthesized piece: its first character's index in the text, the native frame its audio starts
    at in the joined audio, and its tokens' timing (sources relative to the piece)."""

    offset: int
    start: int
    timing: TokenTiming


@dataclass(frozen=True, slots=True)
class Mark:
    """A sentence or word: where it is in the text (characters and UTF-8 bytes) and when it is spoken."""

    type: MarkType
    start: int  # character offsets into the text
    end: int
    byte_start: int
    byte_end: int
    start_ms: int
    end_ms: int
    value: str

    def polly(self) -> dict[str, int | str]:
        """The mark as Amazon Polly writes it (`time` is when it starts; offsets in bytes)."""
        return {
            "time": self.start_ms,
            "type": self.type,
            "start": self.byte_start,
            "end": self.byte_end,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True, slots=True)
class SpeechMarks:
    """Every sentence and word of a text, sorted by time (a sentence before its first word)."""

    text: str
    marks: tuple[Mark, ...]
    duration_ms: int

    @property
    def sentences(self) -> list[Mark]:
        return [m for m in self.marks if m.type == "sentence"]

    @property
    def words(self) -> list[Mark]:
        return [m for m in self.marks if m.type == "word"]


def is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks make words; punctuation, symbols and emoji do not."""
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Each whitespace-separated run that holds a word character, without its leading and trailing
    punctuation (`"Hei!"` is `Hei`; `well-known` and `don't` stay whole)."""
    spans = []
    for match in _RUN.finditer(text):
        start, end = match.span()
        while start < end and not is_word_char(text[start]):
            start += 1
        while end > start and not is_word_char(text[end - 1]):
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def usable(timing: TokenTiming | None, waveform_samples: int) -> bool:
    """Whether a piece's timing can place marks: one source per token, durations summing to its audio."""
    return (
        timing is not None
        and len(timing.samples) == len(timing.sources)
        and any(s >= 0 for s in timing.sources)
        and sum(timing.samples) <= waveform_samples
    )


def _char_frames(text_length: int, pieces: Sequence[SpokenPiece]) -> tuple[list[int], list[int]]:
    """For each character of the text, the first and one-past-last native frame of its tokens (-1: none).

    A blank token belongs to the character before it; a piece's leading blank to its first character.
    """
    starts = [-1] * text_length
    ends = [-1] * text_length
    for piece in pieces:
        sources = piece.timing.sources
        owner = next((s for s in sources if s >= 0), 0)
        frame = piece.start
        for samples, source in zip(piece.timing.samples, sources, strict=True):
            if source >= 0:
                owner = source
            index = piece.offset + owner
            if 0 <= index < text_length:
                if starts[index] < 0:
                    starts[index] = frame
                ends[index] = frame + samples
            frame += samples
    return starts, ends


class _Timeline:
    """When any span of the text is spoken, from its characters' frames."""

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        self._starts = starts
        self._ends = ends
        # next_start[i]: first frame of a kept character at or after i; prev_end[i]: last end before i.
        n = len(starts)
        self._next_start = [-1] * (n + 1)
        for i in range(n - 1, -1, -1):
            self._next_start[i] = starts[i] if starts[i] >= 0 else self._next_start[i + 1]
        self._prev_end = [-1] * (n + 1)
        for i in range(n):
            self._prev_end[i + 1] = ends[i] if ends[i] >= 0 else self._prev_end[i]

    def span(self, start: int, end: int, *, within: tuple[int, int] | None = None) -> tuple[int, int]:
        """The frames [first, last) over which characters start..end are spoken. A span with nothing
        spoken (every character dropped by the tokenizer) gets a point: the next spoken frame, else the
        last one before it, kept `within` the given frames."""
        timed = [i for i in range(start, end) if self._starts[i] >= 0]
        if timed:
            first, last = self._starts[timed[0]], max(self._ends[i] for i in timed)
        else:
            point = self._next_start[end] if self._next_start[end] >= 0 else max(0, self._prev_end[start])
            first = last = point
        if within is not None:
            low, high = within
            first, last = min(max(first, low), high), min(max(last, low), high)
        return first, last


def build_marks(
    text: str, pieces: Sequence[SpokenPiece], *, sampling_rate: int, duration_s: float
) -> SpeechMarks:
    """The sentence and word marks of `text`, timed by its pieces' token durations.

    `sampling_rate` is the rate the timings count at (the model's native one); `duration_s` the delivered
    audio's length, which no mark passes.
    """
    duration_ms = int(duration_s * 1000)
    starts, ends = _char_frames(len(text), pieces)
    timeline = _Timeline(starts, ends)
    byte_at = [0] * (len(text) + 1)
    for i, ch in enumerate(text):
        byte_at[i + 1] = byte_at[i] + len(ch.encode("utf-8"))

    def ms(frame: int) -> int:
        return min(duration_ms, max(0, round(frame * 1000 / sampling_rate)))

    def mark(kind: MarkType, start: int, end: int, frames: tuple[int, int]) -> Mark:
        return Mark(
            type=kind,
            start=start,
            end=end,
            byte_start=byte_at[start],
            byte_end=byte_at[end],
            start_ms=ms(frames[0]),
            end_ms=ms(frames[1]),
            value=text[start:end],
        )

    marks: list[Mark] = []
    words = iter(word_spans(text))
    word = next(words, None)
    for s_start, s_end in sentence_spans(text):
        frames = timeline.span(s_start, s_end)
        marks.append(mark("sentence", s_start, s_end, frames))
        while word is not None and word[0] < s_end:
            marks.append(mark("word", word[0], word[1], timeline.span(*word, within=frames)))
            word = next(words, None)
    order = {"sentence": 0, "word": 1}
    marks.sort(key=lambda m: (m.start_ms, m.start, order[m.type]))
    return SpeechMarks(text=text, marks=tuple(marks), duration_ms=duration_ms)


# -- cues ----------------------------------------------------------------------------------------------------


def sentence_cues(marks: SpeechMarks) -> list[Cue]:
    """One cue per sentence; a sentence longer than CUE_MAX_CHARS or CUE_MAX_MS is cut between words, the
    cuts timed at the next word's start. Sentences with no spoken time give no cue."""
    cues: list[Cue] = []
    words = sorted(marks.words, key=lambda m: m.start)
    text = marks.text
    w = 0
    for sentence in sorted(marks.sentences, key=lambda m: m.start):
        inside: list[Mark] = []
        while w < len(words) and words[w].start < sentence.end:
            if words[w].start >= sentence.start:
                inside.append(words[w])
            w += 1
        # Cut points: (character, time) where a new cue begins.
        cuts: list[tuple[int, int]] = [(sentence.start, sentence.start_ms)]
        for word in inside[1:]:
            chunk_start, chunk_ms = cuts[-1]
            too_long = word.end - chunk_start > CUE_MAX_CHARS or word.end_ms - chunk_ms > CUE_MAX_MS
            if too_long and word.start_ms >= chunk_ms:
                cuts.append((word.start, word.start_ms))
        bounds = [*cuts, (sentence.end, sentence.end_ms)]
        for (c_start, t_start), (c_end, t_end) in itertools.pairwise(bounds):
            body = text[c_start:c_end].strip()
            if body and t_end > t_start:
                cues.append(Cue(t_start, t_end, body))
    return cues


def word_cues(marks: SpeechMarks) -> list[Cue]:
    """One cue per spoken word (a word the tokenizer dropped entirely takes no time and gets none)."""
    return [Cue(m.start_ms, m.end_ms, m.value) for m in marks.words if m.end_ms > m.start_ms]


# -- rendering -----------------------------------------------------------------------------------------------


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _lines(text: str) -> str:
    return "\n".join(textwrap.wrap(text, CUE_LINE_CHARS, break_long_words=False, break_on_hyphens=False))


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_json_lines(marks: SpeechMarks) -> str:
    return "".join(
        json.dumps(m.polly(), ensure_ascii=False, separators=(",", ":")) + "\n" for m in marks.marks
    )


def render_vtt(cues: Sequence[Cue]) -> str:
    blocks = ["WEBVTT\n"]
    for number, cue in enumerate(cues, start=1):
        timing = f"{_clock(cue.start_ms, '.')} --> {_clock(cue.end_ms, '.')}"
        blocks.append(f"{number}\n{timing}\n{_vtt_escape(_lines(cue.text))}\n")
    return "\n".join(blocks)


def render_srt(cues: Sequence[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(cues, start=1):
        timing = f"{_clock(cue.start_ms, ',')} --> {_clock(cue.end_ms, ',')}"
        blocks.append(f"{number}\n{timing}\n{_lines(cue.text)}\n")
    return "\n".join(blocks)


def render(marks: SpeechMarks) -> dict[MarksFormat, bytes]:
    """Every marks format, as the UTF-8 files stored beside the audio."""
    cues = sentence_cues(marks)
    files = {
        MarksFormat.JSON: render_json_lines(marks),
        MarksFormat.VTT: render_vtt(cues),
        MarksFormat.SRT: render_srt(cues),
        MarksFormat.WORDS_VTT: render_vtt(word_cues(marks)),
    }
    return {fmt: body.encode("utf-8") for fmt, body in files.items()}
