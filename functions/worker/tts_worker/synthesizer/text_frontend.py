"""What a model makes of a text before any forward pass: romanized where its tokenizer says `is_uroman`, then
tokenized. Cheap (no weights), so the registry keeps one for every model it has met, resident or not.

MMS models for languages in a non-Latin script (Russian, Hindi, Greek, Arabic, ...) were trained on text
romanized by `uroman`, and their tokenizers say so (`VitsTokenizer.is_uroman`); transformers' VITS docs ask
the caller to romanize first. VitsTokenizer would do it itself when uroman is installed, but it builds a new
`uroman.Uroman()` (about 5 s of data loading) on every call; here one romanizer serves the whole process.
uroman's tables ship in its wheel: it needs no network.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_ROMANIZER_LOCK = threading.Lock()


@cache
def _romanizer() -> Any:
    """The process's uroman.Uroman, loaded on first use (its tables take seconds to read)."""
    import uroman

    return uroman.Uroman()


def romanize(text: str, *, language: str | None = None) -> str:
    """`text` in Latin characters, as uroman writes it; `language` (ISO 639-3) picks its language rules."""
    return romanize_mapped(text, language=language)[0]


def romanize_mapped(text: str, *, language: str | None = None) -> tuple[str, list[int]]:
    """`romanize(text)`, and for each of its characters the index in `text` of the character it came from.

    uroman's edges say which span of the input each piece of output romanizes; their texts joined are its
    plain output. A piece longer than its span is spread over the span in order.
    """
    import uroman

    with _ROMANIZER_LOCK:  # one romanizer per process; it is not documented as thread-safe
        edges = _romanizer().romanize_string(text, lcode=language, rom_format=uroman.RomFormat.EDGES)
    out: list[str] = []
    origin: list[int] = []
    for edge in edges:
        piece = str(getattr(edge, "txt", ""))
        start = int(getattr(edge, "start", 0))
        span = max(1, int(getattr(edge, "end", start + 1)) - start)
        out.append(piece)
        origin.extend(min(len(text) - 1, start + j * span // max(1, len(piece))) for j in range(len(piece)))
    return "".join(out), origin


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the model is fed for a text, and where each id came from.

    `sources[k]` is the index in the text of the character id k speaks, or -1 for an id that speaks none (the
    blanks add_blank puts between characters). Characters the tokenizer drops have no id at all.
    """

    ids: list[int]
    sources: list[int]


def _aligned_sources(
    predicted: Sequence[int], predicted_sources: Sequence[int], actual: Sequence[int]
) -> list[int]:
    """The source of each actual id, from a prediction of the ids and their sources.

    Equal sequences (the usual case) map one to one; otherwise the longest matching runs decide, and an id
    the prediction lacks takes the source of the id before it (the first source for a leading one).
    """
    if list(predicted) == list(actual):
        return list(predicted_sources)
    sources = [-1] * len(actual)
    matcher = difflib.SequenceMatcher(None, list(predicted), list(actual), autojunk=False)
    for tag, p0, p1, a0, a1 in matcher.get_opcodes():
        if tag == "equal":
            sources[a0:a1] = predicted_sources[p0:p1]
        elif tag == "replace":
            for k in range(a0, a1):
                sources[k] = predicted_sources[p0 + (k - a0) * (p1 - p0) // (a1 - a0)]
    first = next((s for s in predicted_sources if s >= 0), 0)
    previous = first
    for k, source in enumerate(sources):
        if source < 0:
            sources[k] = previous
        previous = sources[k]
    return sources


class TextFrontEnd:
    """A model's tokenizer and the facts of its config the worker needs before loading weights."""

    def __init__(self, tokenizer: Any, *, vocab_size: int, sampling_rate: int) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._sampling_rate = sampling_rate
        self._romanizes = bool(getattr(tokenizer, "is_uroman", False))
        language = getattr(tokenizer, "language", None)
        self._language = language if isinstance(language, str) and language else None
        self._vocabulary = set(getattr(tokenizer, "encoder", {}))

    @classmethod
    def load(cls, directory: str | Path) -> TextFrontEnd:
        """The tokenizer and config of a saved model directory (a hub id works when the hub is reachable)."""
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        config: Any = AutoConfig.from_pretrained(str(directory))
        front_end = cls(tokenizer, vocab_size=int(config.vocab_size), sampling_rate=int(config.sampling_rate))
        if front_end.romanizes:
            _romanizer()  # pay for uroman's tables here, at load, not in the first job
        return front_end

    @classmethod
    def for_model(cls, model: Any, tokenizer: Any) -> TextFrontEnd:
        return cls(
            tokenizer,
            vocab_size=int(model.config.vocab_size),
            sampling_rate=int(model.config.sampling_rate),
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def sampling_rate(self) -> int:
        return self._sampling_rate

    @property
    def romanizes(self) -> bool:
        """Whether text is romanized with uroman before it is tokenized (the tokenizer's is_uroman)."""
        return self._romanizes

    def prepare(self, text: str) -> str:
        """The text as the tokenizer should get it."""
        return self._prepare_mapped(text)[0]

    def _prepare_mapped(self, text: str) -> tuple[str, list[int]]:
        """`prepare(text)`, and for each of its characters the index in `text` it came from."""
        if not self._romanizes or text.isascii():
            return text, list(range(len(text)))
        romanized, origin = romanize_mapped(text, language=self._language)
        # What uroman leaves outside ASCII (symbols, emoji) the vocabulary drops anyway; dropping it here
        # keeps VitsTokenizer from building a romanizer of its own for it.
        kept = [j for j, ch in enumerate(romanized) if ch.isascii() or ch in self._vocabulary]
        return "".join(romanized[j] for j in kept), [origin[j] for j in kept]

    def _predicted(self, prepared: str, origin: Sequence[int]) -> tuple[list[int], list[int]]:
        """The content ids VitsTokenizer makes of `prepared` (phonemize off), each with its source index:
        lowercased unless in the vocabulary, unknown characters dropped, whitespace stripped at both ends."""
        tokenizer = self._tokenizer
        encoder: dict[str, int] = getattr(tokenizer, "encoder", {})
        normalize = bool(getattr(tokenizer, "normalize", True))
        romanian = getattr(tokenizer, "language", None) == "ron"
        chars: list[tuple[str, int]] = []
        for ch, source in zip(prepared, origin, strict=True):
            out = ch if not normalize or ch in encoder else ch.lower()
            if romanian:
                out = out.replace("ț", "ţ")
            chars.extend((c, source) for c in out if not normalize or c in encoder)
        if normalize:
            while chars and chars[0][0].isspace():
                chars.pop(0)
            while chars and chars[-1][0].isspace():
                chars.pop()
        unknown = int(getattr(tokenizer, "unk_token_id", 0) or 0)
        return [int(encoder.get(c, unknown)) for c, _ in chars], [source for _, source in chars]

    def _content_positions(self, ids: Sequence[int]) -> range:
        # With add_blank the tokenizer puts id 0 between characters; only the odd positions carry text.
        return range(1, len(ids), 2) if getattr(self._tokenizer, "add_blank", False) else range(len(ids))

    def _model_ids(self, ids: Sequence[int]) -> list[int]:
        # A literal added token (e.g. "<unk>") may fall outside the embedding table: speak it as a blank.
        return [i if 0 <= i < self._vocab_size else 0 for i in ids]

    def token_ids(self, text: str) -> list[int] | None:
        """The ids to feed the model, or None when the tokenizer keeps nothing of the text."""
        ids = [int(i) for i in self._tokenizer(self.prepare(text))["input_ids"]]
        if not self._content_positions(ids):
            return None
        return self._model_ids(ids)

    def tokens(self, text: str) -> Tokens | None:
        """`token_ids(text)` and the character each id speaks. The ids are the tokenizer's own; the
        sources come from a prediction of them, checked (and if need be aligned) against them."""
        prepared, origin = self._prepare_mapped(text)
        ids = [int(i) for i in self._tokenizer(prepared)["input_ids"]]
        positions = self._content_positions(ids)
        if not positions:
            return None
        predicted, predicted_sources = self._predicted(prepared, origin)
        content = [ids[k] for k in positions]
        sources = [-1] * len(ids)
        for k, source in zip(positions, _aligned_sources(predicted, predicted_sources, content), strict=True):
            sources[k] = source
        return Tokens(ids=self._model_ids(ids), sources=sources)

    def is_speakable(self, text: str) -> bool:
        return self.token_ids(text) is not None
