"""TTS_CPU_GRAPH through VitsSynthesizer: on a CPU (auto) the whole forward runs on ONNX Runtime, with eager's
durations and eager's audio up to float rounding; torch keeps today's path; CUDA never gets the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tts_worker.synthesizer import onnx_graph_check
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.vits import VitsSynthesizer

pytestmark = pytest.mark.model

ITEMS = [
    SynthesisItem(text="Hyvää huomenta, tämä on testi.", seed=11),
    SynthesisItem(text="Kissa.", seed=12, speaking_rate=1.3),
]


def test_auto_runs_the_whole_cpu_forward_on_onnx_runtime(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Given
    eager = VitsSynthesizer.load(tiny_model_dir, device="cpu", decoder_runtime="torch", cache_dir=tmp_path)

    # When
    graph = VitsSynthesizer.load(tiny_model_dir, device="cpu", cache_dir=tmp_path)

    # Then: the same token durations (speech marks) and the same audio up to float rounding
    assert (graph.graph_runtime, graph.decoder_runtime) == ("onnxruntime", "onnxruntime")
    assert eager.graph_runtime == "torch"
    for fast, exact in zip(graph.synthesize(ITEMS), eager.synthesize(ITEMS), strict=True):
        assert fast.timing == exact.timing
        assert fast.waveform.shape == exact.waveform.shape
        tolerance = onnx_graph_check.WAVEFORM_TOLERANCE
        np.testing.assert_allclose(fast.waveform, exact.waveform, atol=tolerance, rtol=0)


def test_torch_keeps_front_and_flow_on_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    synthesizer = VitsSynthesizer.load(tiny_model_dir, device="cpu", cpu_graph="torch", cache_dir=tmp_path)
    assert (synthesizer.graph_runtime, synthesizer.decoder_runtime) == ("torch", "onnxruntime")
    assert not list((tmp_path / "onnx").glob("vits-*.onnx"))
