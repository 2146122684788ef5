"""Cold start in a fresh interpreter: `python -m bench.coldstart seed|worker MODEL DEVICE` prints JSON.

import (torch + transformers), model load, first synthesis of one short sentence, peak memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not imported before the clock starts
    from tts_common.settings import Device

FIRST_TEXT = "Hyvää huomenta, tämä on lyhyt testi."


def main(path: str, model: str, device: Device) -> dict[str, float]:
    started = time.perf_counter()
    import torch
    import transformers  # noqa: F401

    imported = time.perf_counter()
    from tts_worker.synthesizer.base import SynthesisItem
    from tts_worker.synthesizer.random_models import ensure_generated, is_generated

    source = str(ensure_generated(model)) if is_generated(model) else model
    if path == "seed":
        from transformers import AutoTokenizer, VitsModel

        vits: Any = VitsModel.from_pretrained(source)
        vits = vits.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(source)
        loaded = time.perf_counter()
        with torch.inference_mode():
            torch.manual_seed(0)
            ids = tokenizer(FIRST_TEXT, return_tensors="pt")["input_ids"].to(device)
            vits(input_ids=ids).waveform.cpu()
    else:
        from tts_worker.synthesizer.loader import load_synthesizer

        synthesizer = load_synthesizer(source, device=device, warm_up=False)
        loaded = time.perf_counter()
        synthesizer.synthesize([SynthesisItem(text=FIRST_TEXT, seed=0)])
    first = time.perf_counter()
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_s": first - loaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _device(name: str) -> Device:
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        return "cuda"
    raise SystemExit(f"device must be cpu or cuda, not {name!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], _device(sys.argv[3]))))
