"""The local stack's models: one generated tiny model per language, uploaded to the model store on moto.

`tiny-random-fin`, `tiny-random-eng` and `tiny-random-swh` are seeded from their language, so each speaks a
different waveform and a job spoken by the wrong model shows in its audio. They go to the store through the
same code as `python -m tts_worker.prefetch --to-store` (`make models`), and the worker downloads them from
there on first use, so `make run` exercises the S3 path end to end:

    resources = provision(endpoint_url=endpoint, ...)
    publish_local_models(bucket=resources.bucket_name, endpoint_url=endpoint)
    env.update(worker_environment(bucket=resources.bucket_name, cache_dir=<a fresh directory>))

`python -m local.models --endpoint-url http://127.0.0.1:5000 --bucket BUCKET` does the upload by hand.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tts_common.adapters.model_store import DEFAULT_PREFIX, ModelStore
from tts_worker import prefetch

logger = logging.getLogger(__name__)

LOCAL_LANGUAGES = ("fin", "eng", "swh")
LOCAL_TEMPLATE = "tiny-random-{language}"
REGION = "us-east-1"


def publish_local_models(
    *,
    bucket: str,
    endpoint_url: str | None,
    languages: Sequence[str] = LOCAL_LANGUAGES,
    prefix: str = DEFAULT_PREFIX,
    region: str = REGION,
    work_dir: Path | None = None,
    generated_cache: Path | None = None,
) -> list[str]:
    """Generate each language's tiny model (with its ONNX decoder export) and upload it to the store prefix
    of `bucket`; returns the model ids. The generated models are built once into `generated_cache`
    (default ~/.cache/serverless-tts) and reused by later runs; their exports take a second or two each."""
    from tts_worker.synthesizer.random_models import default_cache_dir

    store = ModelStore.connect(bucket=bucket, prefix=prefix, region=region, endpoint_url=endpoint_url)
    model_ids = prefetch.model_ids_for(languages, LOCAL_TEMPLATE)
    prefetch.to_store(
        model_ids, store, work_dir=work_dir, generated_cache=generated_cache or default_cache_dir()
    )
    logger.info("local models in the store", extra={"models": model_ids, "store": store.location})
    return model_ids


def worker_environment(
    *,
    bucket: str,
    languages: Sequence[str] = LOCAL_LANGUAGES,
    prefix: str = DEFAULT_PREFIX,
    cache_dir: Path | None = None,
) -> dict[str, str]:
    """What the stack's processes need to serve the local models from the store: the languages and their
    template, the store, no hub. Give the worker a fresh `cache_dir` per run, or a copy downloaded by an
    earlier run is used and the store is not read."""
    env = {
        "TTS_LANGUAGES": ",".join(languages),
        "TTS_MODEL_TEMPLATE": LOCAL_TEMPLATE,
        "TTS_MODEL_STORE_BUCKET": bucket,
        "TTS_MODEL_STORE_PREFIX": prefix,
        "TTS_ALLOW_HUB": "false",
    }
    if cache_dir is not None:
        env["TTS_CACHE_DIR"] = str(cache_dir)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.models", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint-url", default=None, help="moto's server (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--languages", default=",".join(LOCAL_LANGUAGES))
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    ids = publish_local_models(
        bucket=args.bucket, endpoint_url=args.endpoint_url, languages=languages, prefix=args.prefix
    )
    print("\n".join(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
