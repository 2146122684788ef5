"""What a model makes of a text before any forward pass: romanized where its tokenizer says `is_uroman`, then
tokenized. Cheap (no weights), so the registry keeps one for every model it has met, resident or not.

MMS models for languages in a non-Latin script (Russian, Hindi, Greek, Arabic, ...) were trained on text
romanized by `uroman`, and their tokenizers say so (`VitsTokenizer.is_uroman`); transformers' VITS docs ask
the caller to romanize first. VitsTokenizer would do it itself when uroman is installed, but it builds a new
`uroman.Uroman()` (about 5 s of data loading) on every call; here one romanizer serves the whole process.
uroman's tables ship in its wheel: it needs no network.
"""

from __future__ import annotations

import logging
import threading
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
    with _ROMANIZER_LOCK:  # one romanizer per process; it is not documented as thread-safe
        romanized = _romanizer().romanize_string(text, lcode=language)
    return str(romanized)


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
        if not self._romanizes or text.isascii():
            return text
        romanized = romanize(text, language=self._language)
        # What uroman leaves outside ASCII (symbols, emoji) the vocabulary drops anyway; dropping it here
        # keeps VitsTokenizer from building a romanizer of its own for it.
        return "".join(ch for ch in romanized if ch.isascii() or ch in self._vocabulary)

    def token_ids(self, text: str) -> list[int] | None:
        """The ids to feed the model, or None when the tokenizer keeps nothing of the text."""
        ids = [int(i) for i in self._tokenizer(self.prepare(text))["input_ids"]]
        # With add_blank the tokenizer puts id 0 between characters; only the odd positions carry text.
        content = ids[1::2] if getattr(self._tokenizer, "add_blank", False) else ids
        if not content:
            return None
        # A literal added token (e.g. "<unk>") may fall outside the embedding table: speak it as a blank.
        return [i if 0 <= i < self._vocab_size else 0 for i in ids]

    def is_speakable(self, text: str) -> bool:
        return self.token_ids(text) is not None
