"""The model store: saved model directories (save_pretrained output and its onnx/ decoder export) under a
prefix of an S3 bucket, one directory per model: `<prefix><name>/config.json`, `<prefix><name>/onnx/...`.

An upload writes every file, then a manifest (`<prefix><name>/_manifest.json`: each file's path and size)
last: a reader trusts a directory only once its manifest is there, so it never reads a half-written upload.
A download fetches what the manifest lists into a staging directory, checks each size, and renames it into
place: a reader of the target sees a complete directory or none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tts_common.domain import MODEL_STORE_PREFIX

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
MANIFEST_FORMAT = 1
DEFAULT_PREFIX = MODEL_STORE_PREFIX
_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: str  # relative to the model's directory, `/`-separated
    size: int


def _safe_relative(path: str) -> PurePosixPath:
    """A manifest entry as a relative path that stays inside the model's directory."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or any(p in {"", ".", ".."} for p in relative.parts):
        raise ValueError(f"manifest entry {path!r} leaves the model's directory")
    return relative


class ModelStore:
    """One prefix of one bucket. The client is a boto3 S3 client (tts_common.adapters.aws.client)."""

    def __init__(self, *, s3_client: Any, bucket: str, prefix: str = DEFAULT_PREFIX) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix

    @classmethod
    def connect(
        cls,
        *,
        bucket: str,
        prefix: str = DEFAULT_PREFIX,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> ModelStore:
        """A store on a client of its own, for tools without service settings (prefetch --to-store): region
        and endpoint from the arguments, else from the environment (AWS_REGION, AWS_ENDPOINT_URL)."""
        s3 = boto3.client(
            "s3",
            region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        )
        return cls(s3_client=s3, bucket=bucket, prefix=prefix)

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    def key(self, name: str, relative: str = "") -> str:
        return f"{self._prefix}{name}/{relative}"

    def upload(self, name: str, directory: Path) -> list[StoredFile]:
        """Put every file of `directory` (hidden ones aside) under `name`, then its manifest. Returns what
        the manifest lists. Uploading again replaces the model (the manifest is written last again)."""
        files = sorted(
            path
            for path in directory.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        )
        if not (directory / "config.json").is_file():
            raise ValueError(f"{directory} holds no saved model (no config.json)")
        stored = []
        for path in files:
            relative = path.relative_to(directory).as_posix()
            self._s3.upload_file(str(path), self._bucket, self.key(name, relative))
            stored.append(StoredFile(relative, path.stat().st_size))
        manifest = {
            "format": MANIFEST_FORMAT,
            "files": [{"path": f.path, "size": f.size} for f in stored],
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=self.key(name, MANIFEST),
            Body=json.dumps(manifest, indent=1).encode("utf-8"),
            ContentType="application/json",
        )
        logger.info("model uploaded to the store", extra={"model_dir": name, "files": len(stored)})
        return stored

    def manifest(self, name: str) -> list[StoredFile] | None:
        """What the store holds under `name`, or None when there is no (complete) upload of it."""
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self.key(name, MANIFEST))["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in _MISSING:
                return None
            if code == "NoSuchBucket":
                logger.warning("the model store's bucket does not exist", extra={"bucket": self._bucket})
                return None
            raise
        try:
            manifest = json.loads(bytes(body).decode("utf-8"))
            return [StoredFile(str(f["path"]), int(f["size"])) for f in manifest["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the store's manifest of {name!r} is unreadable: {exc}") from exc

    def names(self) -> list[str]:
        """The models (directory names) with a complete upload under the prefix."""
        found = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = str(common["Prefix"])[len(self._prefix) :].rstrip("/")
                if self.manifest(name) is not None:
                    found.append(name)
        return sorted(found)

    def download(self, name: str, target: Path) -> bool:
        """Fetch model `name` into directory `target` (which must not exist yet); False when the store has
        no complete upload of it. Concurrent downloaders of one target never clash: one rename wins."""
        files = self.manifest(name)
        if files is None:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for stored in files:
                local = staging.joinpath(*_safe_relative(stored.path).parts)
                local.parent.mkdir(parents=True, exist_ok=True)
                self._s3.download_file(self._bucket, self.key(name, stored.path), str(local))
                if local.stat().st_size != stored.size:
                    raise ValueError(
                        f"{self.key(name, stored.path)} is {local.stat().st_size} bytes, "
                        f"its manifest says {stored.size}"
                    )
            os.chmod(staging, 0o755)  # mkdtemp makes it 0700
            try:
                os.rename(staging, target)  # atomic: readers see a complete directory or none
            except OSError:
                if not target.is_dir():
                    raise  # not a lost race with another downloader
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True
