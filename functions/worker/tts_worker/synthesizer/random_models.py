"""Randomly initialised VITS models with the MMS architecture, for tests and benchmarks without the hub.

`tiny-random` is small enough for a unit test; `mms-random` has the full facebook/mms-tts-* shape
(36M parameters) for honest timings. Both are generated from a fixed seed, saved with save_pretrained and
then loaded through the same from_pretrained path as a real model.

`tiny-random-{language}` and `mms-random-{language}` (an ISO 639-3 code: tiny-random-fin, tiny-random-eng,
tiny-random-swh) are the same recipes seeded from the language, so each language's model speaks a different
waveform and a job spoken by the wrong model shows in its audio. For a language written in a non-Latin script
(UROMAN_LANGUAGES) the tokenizer says `is_uroman`, as MMS's do, so its text is romanized before tokenizing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import VitsConfig, VitsModel, VitsTokenizer

logger = logging.getLogger(__name__)

TINY_RANDOM = "tiny-random"
MMS_RANDOM = "mms-random"
# Bump when a recipe changes, so an old cached copy is never mistaken for the new one.
RECIPE_VERSION = 1
GENERATION_SEED = 1234
# tiny-random, mms-random, and either with an ISO 639-3 language: tiny-random-fin, mms-random-swh.
_GENERATED_NAME = re.compile(r"^(?P<recipe>tiny-random|mms-random)(?:-(?P<language>[a-z]{3}))?$")
# Languages MMS writes in a non-Latin script, whose MMS tokenizers have is_uroman=True; a generated model
# for one of them does too (its vocabulary stays Latin, as uroman's output is).
UROMAN_LANGUAGES = frozenset(
    {"amh", "ara", "bel", "ben", "bul", "ell", "fas", "guj", "heb", "hin", "kat", "kor", "mar", "nep", "pan"}
    | {"rus", "srp", "tam", "tel", "tha", "ukr", "urd"}
)
# Real MMS speech runs at about 0.07 s of audio per character; random weights are calibrated to that pace.
TARGET_SECONDS_PER_CHAR = 0.07

# Index 0 is the blank the tokenizer puts between characters (add_blank=True), as in the MMS vocabularies.
VOCABULARY: tuple[str, ...] = (
    "<pad>",
    "<unk>",
    *" '-,.!?:;",
    *"abcdefghijklmnopqrstuvwxyz",
    *"åäöéü",
)

CALIBRATION_TEXTS: tuple[str, ...] = (
    "Hyvää huomenta, tämä on testi. Kuinka voit tänään?",
    "Suomen kieli on uralilainen kieli, jota puhuu noin viisi miljoonaa ihmistä.",
    "Kissa istui ikkunalaudalla ja katseli lintuja.",
    "Tänään sataa vettä, joten otan sateenvarjon mukaan.",
    "Järvellä oli hiljaista; vain kuikka huusi kaukana.",
)


def tiny_config(vocab_size: int) -> VitsConfig:
    """The MMS layout with every width cut down: one synthesis of a sentence takes milliseconds on a CPU."""
    return VitsConfig(
        vocab_size=vocab_size,
        pad_token_id=0,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=33,
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1,
        depth_separable_num_layers=1,
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
    )


def mms_config(vocab_size: int) -> VitsConfig:
    """VitsConfig's defaults are the facebook/mms-tts-* architecture."""
    return VitsConfig(vocab_size=vocab_size, pad_token_id=0)


def make_tokenizer(directory: Path, *, language: str = "fin", is_uroman: bool = False) -> VitsTokenizer:
    """A character tokenizer like MMS Finnish: lower-cased, characters outside the vocabulary dropped.
    With `is_uroman` (as MMS Russian or Hindi), text is to be romanized before it is tokenized."""
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(
        json.dumps({ch: i for i, ch in enumerate(VOCABULARY)}, ensure_ascii=False), encoding="utf-8"
    )
    return VitsTokenizer(
        str(vocab_file),
        language=language,
        phonemize=False,
        is_uroman=is_uroman,
        add_blank=True,
        normalize=True,
    )


def _log_durations(model: VitsModel, tokenizer: Any, texts: Sequence[str]) -> list[torch.Tensor]:
    """Per-token log durations from the duration predictor alone (no decoder pass), with fixed noise."""
    found = []
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]], dtype=torch.long)
            padding_mask = torch.ones_like(ids).unsqueeze(-1).float()
            encoded = model.text_encoder(input_ids=ids, padding_mask=padding_mask)
            torch.manual_seed(0)
            found.append(
                model.duration_predictor(
                    encoded.last_hidden_state.transpose(1, 2),
                    padding_mask.transpose(1, 2),
                    None,
                    reverse=True,
                    noise_scale=model.noise_scale_duration,
                )
            )
    return found


def seconds_per_char(
    model: VitsModel, tokenizer: Any, texts: Sequence[str], *, speaking_rate: float
) -> float:
    """Audio length per input character at this speaking rate (VitsModel.forward's duration arithmetic)."""
    return _seconds_per_char(model, _log_durations(model, tokenizer, texts), texts, speaking_rate)


def _seconds_per_char(
    model: VitsModel, log_durations: Sequence[torch.Tensor], texts: Sequence[str], speaking_rate: float
) -> float:
    hop = math.prod(model.config.upsample_rates)
    frames = sum(float(torch.ceil(torch.exp(d) / speaking_rate).sum()) for d in log_durations)
    return frames * hop / model.config.sampling_rate / sum(len(t) for t in texts)


def calibrate_speaking_rate(
    model: VitsModel, tokenizer: Any, *, target: float = TARGET_SECONDS_PER_CHAR
) -> float:
    """The base speaking rate at which this model produces `target` seconds of audio per character."""
    log_durations = _log_durations(model, tokenizer, CALIBRATION_TEXTS)
    low, high = 0.05, 50.0
    for _ in range(40):  # audio length only shrinks as the rate grows, so bisection converges
        mid = (low * high) ** 0.5
        if _seconds_per_char(model, log_durations, CALIBRATION_TEXTS, mid) > target:
            low = mid
        else:
            high = mid
    return round(high, 4)


def generation_seed(language: str | None) -> int:
    """The seed a generated model's weights come from: fixed for tiny-random and mms-random, derived from
    the language otherwise (stable across processes and machines, unlike hash())."""
    if language is None:
        return GENERATION_SEED
    digest = hashlib.sha256(f"serverless-tts/generated/{language}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _generate(config_for: Callable[[int], VitsConfig], target: Path, language: str | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(target, language=language or "fin", is_uroman=language in UROMAN_LANGUAGES)
    torch.manual_seed(generation_seed(language))
    model: Any = VitsModel(config_for(len(VOCABULARY)))
    model.eval()
    rate = calibrate_speaking_rate(model, tokenizer)
    model.config.speaking_rate = rate
    model.speaking_rate = rate
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def build_tiny_random(target: Path) -> Path:
    """Generate the tiny model into `target` (overwriting)."""
    _generate(tiny_config, target)
    return target


def build_mms_random(target: Path) -> Path:
    """Generate the full MMS architecture, random weights, into `target` (about 145 MB; seconds on a CPU)."""
    _generate(mms_config, target)
    return target


GENERATED_MODELS: dict[str, Callable[[Path], Path]] = {
    TINY_RANDOM: build_tiny_random,
    MMS_RANDOM: build_mms_random,
}


def is_generated(model: str) -> bool:
    """tiny-random, mms-random, or either for a language (tiny-random-fin)."""
    return _GENERATED_NAME.fullmatch(model) is not None


def build_generated(name: str, target: Path) -> Path:
    """Generate model `name` (see is_generated) into `target` (overwriting)."""
    found = _GENERATED_NAME.fullmatch(name)
    if found is None:
        raise ValueError(f"{name!r} is not a generated model's name")
    config_for = tiny_config if found["recipe"] == TINY_RANDOM else mms_config
    _generate(config_for, target, found["language"])
    return target


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "serverless-tts"


def ensure_generated(name: str, cache_dir: Path | None = None) -> Path:
    """The directory holding generated model `name`, built on first use; concurrent builders never clash."""
    if not is_generated(name):
        raise ValueError(f"{name!r} is not a generated model's name")
    root = cache_dir or default_cache_dir()
    target = root / f"{name}-v{RECIPE_VERSION}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build_generated(name, staging)
        try:
            os.rename(staging, target)  # atomic: readers see a complete directory or none
        except OSError:
            if not (target / "config.json").is_file():
                raise  # not a lost race with another builder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("generated model", extra={"tts_model": name, "path": str(target)})
    return target
