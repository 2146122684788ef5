"""Build-time model fetch: `python -m tts_worker.prefetch TARGET_DIR [--model ID]`.

Downloads TTS_MODEL (or --model) from the hub and saves it with save_pretrained into TARGET_DIR, so the
image runs with TTS_MODEL=TARGET_DIR and never calls the hub. Generated models (tiny-random, mms-random)
are built into TARGET_DIR instead. The decoder's ONNX export (the CPU worker's decoder runtime) is written
into TARGET_DIR/onnx too, and checked against eager, unless --no-onnx-decoder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tts_common.exceptions import ModelLoadError
from tts_common.settings import DEFAULT_MODEL

logger = logging.getLogger("tts_worker.prefetch")


def prefetch(model: str, target: Path, *, onnx_decoder: bool = True) -> Path:
    """Save `model` (hub id, directory or generated name) as a self-contained directory at `target`."""
    from tts_worker.synthesizer import random_models
    from tts_worker.synthesizer.vits import VitsSynthesizer

    if random_models.is_generated(model):
        random_models.GENERATED_MODELS[model](target)
    else:
        # Loading through the worker's own path proves the saved copy is one the worker can load.
        synthesizer = VitsSynthesizer.load(
            model, model_id=model, device="cpu", dtype="float32", decoder_runtime="torch"
        )
        target.mkdir(parents=True, exist_ok=True)
        synthesizer.save_pretrained(target)
    if onnx_decoder:
        export_decoder(target)
    return target


def export_decoder(target: Path) -> Path:
    """Export the saved model's decoder into `target`/onnx, where the worker looks first, and verify it."""
    from transformers import VitsModel

    from tts_worker.synthesizer import onnx_decoder

    if not onnx_decoder.available():
        raise ModelLoadError("the ONNX decoder needs onnxruntime and onnx (or pass --no-onnx-decoder)")
    model: Any = VitsModel.from_pretrained(str(target))
    model.eval()
    try:
        decoder, difference = onnx_decoder.load(
            model.decoder, search=[], cache_dir=target / onnx_decoder.DIRECTORY_NAME, threads=1
        )
    except onnx_decoder.DecoderExportError as exc:
        raise ModelLoadError(str(exc)) from exc
    logger.info("exported the decoder to %s (max difference from eager %.2g)", decoder.path, difference)
    return decoder.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tts_worker.prefetch", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "target", nargs="?", default=os.environ.get("TTS_MODEL_DIR"), help="directory to write"
    )
    parser.add_argument("--model", default=os.environ.get("TTS_MODEL", DEFAULT_MODEL), help="hub id or name")
    parser.add_argument(
        "--no-onnx-decoder",
        action="store_true",
        help="skip the decoder's ONNX export (a CUDA worker runs its decoder on torch)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.target:
        parser.error("give TARGET_DIR (or set TTS_MODEL_DIR)")
    try:
        path = prefetch(args.model, Path(args.target), onnx_decoder=not args.no_onnx_decoder)
    except ModelLoadError as exc:
        logger.error("%s", exc.message)
        return 2
    logger.info("saved %s to %s", args.model, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
