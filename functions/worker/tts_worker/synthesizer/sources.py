"""Where a model's weights come from. In order:

1. a directory, when the model id is a path to one (TTS_MODEL=/opt/model, as a one-model image had it);
2. the image: TTS_IMAGE_MODELS_DIR/<model_dir_name(id)>, as `python -m tts_worker.prefetch --languages ...`
   writes it at build time;
3. the model store: the same directory under TTS_MODEL_STORE_PREFIX in TTS_MODEL_STORE_BUCKET, downloaded
   into TTS_CACHE_DIR/store/<model_dir_name(id)> on first use (then found there);
4. a generated model (tiny-random, mms-random, tiny-random-fin, ...), built into TTS_CACHE_DIR: a recipe,
   not weights, for tests, benchmarks and the local stack;
5. the hub, only with TTS_ALLOW_HUB=true, snapshotted into TTS_CACHE_DIR/hub.

Found in none of them, a model is ModelNotAvailable: a permanent error, so its task fails and the worker goes
on with other jobs.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tts_common.exceptions import ModelLoadError, ModelNotAvailable

logger = logging.getLogger(__name__)

# A hub id (`org/name` or `name`) or a generated model's name: letters, digits, `.`, `_`, `-`.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
MAX_MODEL_ID_CHARS = 200
# The hub forbids `--` and `..` in ids, so `/` -> `--` is reversible and never makes `.` or `..`.
_SEPARATOR = "--"

SOURCE_DIRECTORY = "directory"
SOURCE_IMAGE = "image"
SOURCE_STORE = "store"
SOURCE_GENERATED = "generated"
SOURCE_HUB = "hub"

# What a hub snapshot needs of a VITS repository (not the duplicate pytorch_model.bin).
_HUB_FILES = ["*.json", "*.safetensors"]


def model_dir_name(model_id: str) -> str:
    """The directory (and store key) name of a model: `facebook/mms-tts-fin` -> `facebook--mms-tts-fin`.

    One name per id and one id per name: safe as a path component and an S3 key part, never hidden.
    Raises ValueError for an id that is not a hub id or a generated model's name.
    """
    if (
        len(model_id) > MAX_MODEL_ID_CHARS
        or not _MODEL_ID.fullmatch(model_id)
        or _SEPARATOR in model_id
        or ".." in model_id
    ):
        raise ValueError(f"{model_id!r} is not a model id (org/name, letters, digits, '.', '_', '-')")
    return model_id.replace("/", _SEPARATOR)


def is_model_dir(path: Path) -> bool:
    """Whether `path` holds a saved model (save_pretrained writes config.json)."""
    return (path / "config.json").is_file()


class ModelStorePort(Protocol):
    """The model store (tts_common.adapters.model_store.ModelStore fits)."""

    @property
    def location(self) -> str: ...

    def download(self, name: str, target: Path) -> bool: ...


@dataclass(frozen=True, slots=True)
class LocatedModel:
    """Where one model's files are, and which source they came from."""

    model_id: str
    path: Path
    source: str
    # For a copy this process fetched (store, hub): removes it, so a copy that fails to load is fetched
    # again next time instead of failing for ever.
    discard: Callable[[], None] | None = None


class ModelLocator:
    """Finds (and fetches, where it must) a model's saved directory. One lookup at a time per instance."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        image_dir: Path | None = None,
        store: ModelStorePort | None = None,
        allow_hub: bool = False,
    ) -> None:
        self._cache_dir = cache_dir
        self._image_dir = image_dir
        self._store = store
        self._allow_hub = allow_hub

    @property
    def sources(self) -> list[str]:
        """The sources in the order they are tried, for logs."""
        found = [SOURCE_DIRECTORY]
        if self._image_dir is not None:
            found.append(f"{SOURCE_IMAGE} ({self._image_dir})")
        if self._store is not None:
            found.append(f"{SOURCE_STORE} ({self._store.location})")
        found.append(SOURCE_GENERATED)
        if self._allow_hub:
            found.append(SOURCE_HUB)
        return found

    def locate(self, model_id: str) -> LocatedModel:
        """The model's directory, fetched into the cache if it must be; ModelNotAvailable if nowhere."""
        path = Path(model_id).expanduser()
        if is_model_dir(path):  # as from_pretrained does, a saved directory wins over a hub id
            return LocatedModel(model_id, path, SOURCE_DIRECTORY)
        if model_id.startswith(("/", "./", "../", "~")):
            raise ModelNotAvailable(
                f"model directory {model_id!r} holds no saved model", details={"model_id": model_id}
            )
        try:
            name = model_dir_name(model_id)
        except ValueError as exc:
            raise ModelNotAvailable(str(exc), details={"model_id": model_id}) from exc
        tried: list[str] = []
        if self._image_dir is not None:
            path = self._image_dir / name
            if is_model_dir(path):
                return LocatedModel(model_id, path, SOURCE_IMAGE)
            tried.append(f"the image ({path})")
        if self._store is not None:
            found = self._from_store(model_id, name)
            if found is not None:
                return found
            tried.append(f"the model store ({self._store.location}{name}/)")
        from tts_worker.synthesizer import random_models

        if random_models.is_generated(model_id):
            path = random_models.ensure_generated(model_id, self._cache_dir)
            return LocatedModel(model_id, path, SOURCE_GENERATED)
        if self._allow_hub:
            return self._from_hub(model_id, name)
        tried.append("the hub (not allowed: TTS_ALLOW_HUB=false)")
        raise ModelNotAvailable(
            f"model {model_id!r} is in none of: " + "; ".join(tried), details={"model_id": model_id}
        )

    def _from_store(self, model_id: str, name: str) -> LocatedModel | None:
        assert self._store is not None
        path = self._cache_dir / SOURCE_STORE / name

        def discard() -> None:
            shutil.rmtree(path, ignore_errors=True)

        if is_model_dir(path):
            return LocatedModel(model_id, path, SOURCE_STORE, discard)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._store.download(name, path):
            return None
        if not is_model_dir(path):  # the manifest named no config.json: not a model
            discard()
            raise ModelNotAvailable(
                f"model {model_id!r} in the store has no config.json", details={"model_id": model_id}
            )
        logger.info("model downloaded from the store", extra={"model_id": model_id, "path": str(path)})
        return LocatedModel(model_id, path, SOURCE_STORE, discard)

    def _from_hub(self, model_id: str, name: str) -> LocatedModel:
        import huggingface_hub.constants
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            path = Path(
                snapshot_download(
                    model_id, cache_dir=str(self._cache_dir / SOURCE_HUB), allow_patterns=_HUB_FILES
                )
            )
        except (RepositoryNotFoundError, RevisionNotFoundError, LocalEntryNotFoundError) as exc:
            if isinstance(exc, LocalEntryNotFoundError) and not huggingface_hub.constants.HF_HUB_OFFLINE:
                # Not offline by choice: the hub did not answer. Worth a retry.
                raise ModelLoadError(
                    f"model {model_id!r} could not be fetched from the hub: {exc}",
                    details={"model_id": model_id},
                ) from exc
            # No such repository (or gated), or offline (HF_HUB_OFFLINE) with no copy: no retry finds it.
            raise ModelNotAvailable(
                f"model {model_id!r} is not on the hub ({type(exc).__name__})", details={"model_id": model_id}
            ) from exc
        except Exception as exc:  # the network: worth a retry, so not ModelNotAvailable
            raise ModelLoadError(
                f"model {model_id!r} could not be fetched from the hub: {type(exc).__name__}: {exc}",
                details={"model_id": model_id},
            ) from exc
        if not is_model_dir(path):
            raise ModelNotAvailable(
                f"hub repository {model_id!r} holds no config.json", details={"model_id": model_id}
            )
        logger.info("model fetched from the hub", extra={"model_id": model_id, "dir": name})
        return LocatedModel(model_id, path, SOURCE_HUB)
