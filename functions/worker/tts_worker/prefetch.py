"""Build-time model fetch: `python -m tts_worker.prefetch TARGET_DIR [--model ID]`.

Downloads TTS_MODEL (or --model) from the hub and saves it with save_pretrained into TARGET_DIR, so the
image runs with TTS_MODEL=TARGET_DIR and never calls the hub. Generated models (tiny-random, mms-random)
are built into TARGET_DIR instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tts_common.exceptions import ModelLoadError
from tts_common.settings import DEFAULT_MODEL

logger = logging.getLogger("tts_worker.prefetch")


def prefetch(model: str, target: Path) -> Path:
    """Save `model` (hub id, directory or generated name) as a self-contained directory at `target`."""
    from tts_worker.synthesizer import random_models
    from tts_worker.synthesizer.vits import VitsSynthesizer

    if random_models.is_generated(model):
        return random_models.GENERATED_MODELS[model](target)
    # Loading through the worker's own path proves the saved copy is one the worker can load.
    synthesizer = VitsSynthesizer.load(model, model_id=model, device="cpu", dtype="float32")
    target.mkdir(parents=True, exist_ok=True)
    synthesizer.save_pretrained(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tts_worker.prefetch", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "target", nargs="?", default=os.environ.get("TTS_MODEL_DIR"), help="directory to write"
    )
    parser.add_argument("--model", default=os.environ.get("TTS_MODEL", DEFAULT_MODEL), help="hub id or name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.target:
        parser.error("give TARGET_DIR (or set TTS_MODEL_DIR)")
    try:
        path = prefetch(args.model, Path(args.target))
    except ModelLoadError as exc:
        logger.error("%s", exc.message)
        return 2
    logger.info("saved %s to %s", args.model, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
