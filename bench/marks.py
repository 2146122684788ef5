"""What speech marks cost next to the synthesis they time (issue 13's goal: under 2%).

    python -m bench.run --marks-only [--quick] [--model mms-random]

The texts are split into pieces and spoken one synthesize() call per piece, as the CPU worker does. The
marks' cost is what they add to that: the character map (TextFrontEnd.tokens beyond token_ids, paid inside
every synthesize call) plus building the marks and rendering the four files (once per job). The durations
themselves cost nothing: the forward computes them anyway.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import texts
from tts_common.voice import DEFAULT_MAX_PIECE_CHARS, AudioFormat
from tts_worker.audio import AudioAssembler
from tts_worker.marks import SpokenPiece, build_marks, render
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.vits import VitsSynthesizer
from tts_worker.text_split import piece_offsets, split_text

MARKS_BEGIN = "<!-- bench.marks: written by `python -m bench.run` or `--marks-only` -->"
MARKS_END = "<!-- /bench.marks -->"
MARKS_HEADING = "## Speech marks: their cost next to synthesis"


@dataclass(frozen=True, slots=True)
class MarksCost:
    model: str
    chars: int
    pieces: int
    audio_s: float
    synthesis_s: float  # every synthesize() call, the character map included
    mapping_s: float  # the character map alone (tokens() minus token_ids())
    marks_s: float  # build_marks + render, every format
    files_bytes: int

    @property
    def added_s(self) -> float:
        return self.mapping_s + self.marks_s

    @property
    def share(self) -> float:
        """The marks' time as a fraction of the synthesis time without them."""
        return self.added_s / max(1e-9, self.synthesis_s - self.mapping_s)


def _timed(call: Callable[[], object], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def measure(synthesizer: VitsSynthesizer, *, model: str, quick: bool) -> MarksCost:
    size, count = (500, 2) if quick else (1000, 4)
    chosen = texts.texts(size, count, offset=11)
    front_end = synthesizer.front_end
    synthesis_s = mapping_s = marks_s = audio_s = 0.0
    pieces_total = files_bytes = 0
    for n, text in enumerate(chosen):
        pieces = split_text(text, DEFAULT_MAX_PIECE_CHARS)
        offsets = piece_offsets(text, pieces)
        assembler = AudioAssembler(
            total=len(pieces),
            native_rate=synthesizer.sampling_rate,
            audio_format=AudioFormat.WAV,
            output_rate=synthesizer.sampling_rate,
        )
        timings = []
        for position, piece in enumerate(pieces):
            started = time.perf_counter()
            [result] = synthesizer.synthesize([SynthesisItem(text=piece, seed=1000 * n + position)])
            synthesis_s += time.perf_counter() - started
            assembler.add(position, result.waveform)
            assert result.timing is not None
            timings.append(result.timing)
            # The map's share of that call: tokens() against the plain token_ids() it replaced.
            mapping_s += max(
                0.0,
                _timed(functools.partial(front_end.tokens, piece), 5)
                - _timed(functools.partial(front_end.token_ids, piece), 5),
            )
        started = time.perf_counter()
        spoken = [
            SpokenPiece(offset=o, start=s, timing=t)
            for o, s, t in zip(offsets, assembler.piece_starts, timings, strict=True)
        ]
        files = render(
            build_marks(text, spoken, sampling_rate=assembler.native_rate, duration_s=assembler.duration_s)
        )
        marks_s += time.perf_counter() - started
        files_bytes += sum(len(body) for body in files.values())
        audio_s += assembler.duration_s
        pieces_total += len(pieces)
    return MarksCost(
        model=model,
        chars=sum(len(t) for t in chosen),
        pieces=pieces_total,
        audio_s=audio_s,
        synthesis_s=synthesis_s,
        mapping_s=mapping_s,
        marks_s=marks_s,
        files_bytes=files_bytes,
    )


def block(cost: MarksCost | None) -> list[str]:
    """The section between its markers."""
    lines = [MARKS_BEGIN, MARKS_HEADING, ""]
    if cost is None:
        lines += [
            "Not measured yet: `python -m bench.run --marks-only` measures it and writes this section.",
            "",
        ]
        return [*lines, MARKS_END]
    base = max(1e-9, cost.synthesis_s - cost.mapping_s)
    lines += [
        f"{cost.chars:,} characters of Finnish in {cost.pieces} pieces ({cost.audio_s:.1f} s of audio) on "
        f"`{cost.model}`, one synthesize() call per piece as the CPU worker makes them. Every job gets "
        "speech marks (Polly JSON lines), WebVTT, SRT and word-level WebVTT from the durations the forward "
        "used.",
        "",
        "| | seconds | share of synthesis |",
        "|---|---:|---:|",
        f"| synthesis (without the character map) | {base:.3f} | 100% |",
        f"| character map (inside synthesize) | {cost.mapping_s:.4f} | {cost.mapping_s / base:.3%} |",
        f"| marks built and rendered, 4 files ({cost.files_bytes:,} bytes) | {cost.marks_s:.4f} | "
        f"{cost.marks_s / base:.3%} |",
        f"| **marks in all** | **{cost.added_s:.4f}** | **{cost.share:.3%}** (goal < 2%) |",
        "",
        MARKS_END,
    ]
    return lines


def splice(text: str, section: list[str]) -> str:
    """`text` with its marks section replaced, or the section added at the end."""
    new = "\n".join(section)
    start = text.find(MARKS_BEGIN)
    end = text.find(MARKS_END, start)
    if start >= 0 and end >= 0:
        return text[:start] + new + text[end + len(MARKS_END) :]
    return f"{text.rstrip()}\n\n{new}\n"


def write(cost: MarksCost, *, document: Path) -> None:
    text = document.read_text(encoding="utf-8") if document.is_file() else "# Benchmarks\n"
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(splice(text, block(cost)), encoding="utf-8")
