"""Model fetch at build time, and into the model store.

    python -m tts_worker.prefetch TARGET_DIR [--model ID]
        one model saved into TARGET_DIR itself (TTS_MODEL=TARGET_DIR serves it);
    python -m tts_worker.prefetch TARGET_DIR --languages fin,eng [--template facebook/mms-tts-{language}]
    python -m tts_worker.prefetch TARGET_DIR --models ID[,ID...]
        each model into TARGET_DIR/<model_dir_name(id)>: the image's models directory (TTS_IMAGE_MODELS_DIR);
    python -m tts_worker.prefetch --to-store --languages fin,eng [--bucket B] [--prefix models/] [TARGET_DIR]
        the same directories, uploaded to the model store (TTS_MODEL_STORE_BUCKET, else AUDIO_BUCKET_NAME;
        TTS_MODEL_STORE_PREFIX), where workers download them on first use. `make models LANGUAGES=...`.

A hub model is downloaded and saved with save_pretrained, through the worker's own load path (so the saved
copy is one the worker can load); a generated model (tiny-random, tiny-random-fin, mms-random, ...) is built.
The decoder's ONNX export (the CPU worker's decoder runtime) is written into each directory's onnx/ too, and
checked against eager, unless --no-onnx-decoder.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.adapters.model_store import DEFAULT_PREFIX, ModelStore
from tts_common.exceptions import ModelLoadError
from tts_common.languages import DEFAULT_MODEL_TEMPLATE, TEMPLATE_FIELD, model_id_for
from tts_common.settings import DEFAULT_MODEL
from tts_worker.synthesizer.sources import model_dir_name

logger = logging.getLogger("tts_worker.prefetch")

DEFAULT_TEMPLATE = DEFAULT_MODEL_TEMPLATE


def prefetch(
    model: str, target: Path, *, onnx_decoder: bool = True, generated_cache: Path | None = None
) -> Path:
    """Save `model` (hub id, directory or generated name) as a self-contained directory at `target`.

    With `generated_cache`, a generated model is built there once (random_models.ensure_generated) and
    copied, so tools run again and again (the local stack) do not regenerate it each time.
    """
    from tts_worker.synthesizer import random_models
    from tts_worker.synthesizer.vits import VitsSynthesizer

    if random_models.is_generated(model) and generated_cache is not None:
        shutil.copytree(random_models.ensure_generated(model, generated_cache), target, dirs_exist_ok=True)
    elif random_models.is_generated(model):
        random_models.build_generated(model, target)
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


def model_ids_for(languages: Iterable[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """The model id of each language: `template` with {language} filled in (facebook/mms-tts-fin)."""
    if TEMPLATE_FIELD not in template:
        raise ValueError(f"the template {template!r} has no {TEMPLATE_FIELD}")
    return [model_id_for(language, template=template, overrides={}) for language in languages]


def prefetch_many(
    model_ids: Sequence[str],
    root: Path,
    *,
    onnx_decoder: bool = True,
    generated_cache: Path | None = None,
) -> dict[str, Path]:
    """Each model saved into root/<model_dir_name(id)>, as the worker looks for it in an image or a store."""
    names = {model_id: model_dir_name(model_id) for model_id in model_ids}  # every id checked before work
    saved = {}
    for model_id, name in names.items():
        saved[model_id] = prefetch(
            model_id, root / name, onnx_decoder=onnx_decoder, generated_cache=generated_cache
        )
        logger.info("saved %s to %s", model_id, saved[model_id])
    return saved


def upload(saved: Mapping[str, Path], store: ModelStore) -> None:
    """Each saved directory (with its onnx/ export) into the store, under model_dir_name(id)."""
    for model_id, directory in saved.items():
        files = store.upload(model_dir_name(model_id), directory)
        logger.info("uploaded %s (%d files) to %s", model_id, len(files), store.location)


def to_store(
    model_ids: Sequence[str],
    store: ModelStore,
    *,
    work_dir: Path | None = None,
    onnx_decoder: bool = True,
    generated_cache: Path | None = None,
) -> dict[str, Path]:
    """Fetch or build each model, export its decoder and upload the directory to the store. The directories
    stay in `work_dir` when one is given (a temporary directory otherwise)."""
    if work_dir is not None:
        saved = prefetch_many(model_ids, work_dir, onnx_decoder=onnx_decoder, generated_cache=generated_cache)
        upload(saved, store)
        return saved
    with tempfile.TemporaryDirectory(prefix="tts-models-") as scratch:
        saved = prefetch_many(
            model_ids, Path(scratch), onnx_decoder=onnx_decoder, generated_cache=generated_cache
        )
        upload(saved, store)
    return saved


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
    from tts_worker.synthesizer import onnx_graph
    from tts_worker.synthesizer.vits import ONNX_DECODE_CHUNK_FRAMES

    try:
        graph, check = onnx_graph.load(
            model,
            decoder,
            search=[],
            cache_dir=target / onnx_decoder.DIRECTORY_NAME,
            threads=1,
            decode_chunk_frames=ONNX_DECODE_CHUNK_FRAMES,
        )
    except onnx_graph.GraphExportError as exc:
        raise ModelLoadError(str(exc)) from exc
    logger.info("exported front and flow to %s (max difference from eager %.2g)", graph.paths, check.waveform)
    return decoder.path


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tts_worker.prefetch",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:12]),
    )
    parser.add_argument(
        "target", nargs="?", default=os.environ.get("TTS_MODEL_DIR"), help="directory to write"
    )
    parser.add_argument("--model", default=os.environ.get("TTS_MODEL", DEFAULT_MODEL), help="hub id or name")
    parser.add_argument("--models", help="comma-separated model ids, each into TARGET_DIR/<its dir name>")
    parser.add_argument("--languages", help="comma-separated ISO 639-3 codes, mapped through --template")
    parser.add_argument(
        "--template",
        default=os.environ.get("TTS_MODEL_TEMPLATE", DEFAULT_TEMPLATE),
        help="a language's model id, with {language} (default %(default)s)",
    )
    parser.add_argument("--to-store", action="store_true", help="upload the saved models to the model store")
    parser.add_argument(
        "--bucket",
        default=os.environ.get("TTS_MODEL_STORE_BUCKET") or os.environ.get("AUDIO_BUCKET_NAME"),
        help="the model store's bucket (default TTS_MODEL_STORE_BUCKET, else AUDIO_BUCKET_NAME)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("TTS_MODEL_STORE_PREFIX", DEFAULT_PREFIX),
        help="the model store's prefix (default %(default)s)",
    )
    parser.add_argument(
        "--no-onnx-decoder",
        action="store_true",
        help="skip the decoder's ONNX export (a CUDA worker runs its decoder on torch)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    onnx = not args.no_onnx_decoder
    many = args.models is not None or args.languages is not None
    try:
        model_ids = _split(args.models) + model_ids_for(_split(args.languages), args.template)
        for model_id in model_ids:
            model_dir_name(model_id)
    except ValueError as exc:
        parser.error(str(exc))
    if many and not model_ids:
        parser.error("--models/--languages named no model")
    if args.to_store:
        if not args.bucket:
            parser.error("--to-store needs --bucket (or TTS_MODEL_STORE_BUCKET or AUDIO_BUCKET_NAME)")
        store = ModelStore.connect(bucket=args.bucket, prefix=args.prefix)
        try:
            to_store(
                model_ids or [args.model],
                store,
                work_dir=Path(args.target) if args.target else None,
                onnx_decoder=onnx,
            )
        except ModelLoadError as exc:
            logger.error("%s", exc.message)
            return 2
        except DEPENDENCY_ERRORS as exc:
            logger.error("the model store %s did not take the upload: %s", store.location, exc)
            return 2
        logger.info("the model store %s holds %s", store.location, ", ".join(model_ids or [args.model]))
        return 0
    if not args.target:
        parser.error("give TARGET_DIR (or set TTS_MODEL_DIR)")
    try:
        if many:
            prefetch_many(model_ids, Path(args.target), onnx_decoder=onnx)
        else:
            path = prefetch(args.model, Path(args.target), onnx_decoder=onnx)
            logger.info("saved %s to %s", args.model, path)
    except ModelLoadError as exc:
        logger.error("%s", exc.message)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
