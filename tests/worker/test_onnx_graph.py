"""The whole VITS graph on ONNX Runtime (CPU): the torch path's noise and durations, its audio up to float
rounding, alone and in a padded batch; exported once per set of weights and never trusted unchecked."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from tts_common.exceptions import ConfigurationError, ModelLoadError
from tts_common.settings import CpuGraph as CpuGraphSetting
from tts_common.settings import WorkerSettings, load_settings
from tts_worker.synthesizer import onnx_decoder, onnx_graph, onnx_graph_check
from tts_worker.synthesizer.graph_forward import TorchStages, expand, forward_staged
from tts_worker.synthesizer.vits_forward import ForwardItem, forward_items

pytestmark = pytest.mark.model

REQUIRED = {
    "TASKS_TABLE_NAME": "t",
    "AUDIO_BUCKET_NAME": "b",
    "JOBS_QUEUE_URL": "http://q",
    "EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
}

ITEMS = [
    ForwardItem(
        [5, 0, 12, 0, 30, 0, 7] * 6, seed=11, speaking_rate=1.0, noise_scale=0.667, noise_scale_duration=0.8
    ),
    ForwardItem([9, 0, 3], seed=12, speaking_rate=1.3, noise_scale=0.667, noise_scale_duration=0.8),
    ForwardItem(
        list(range(1, 40)) * 3, seed=13, speaking_rate=0.8, noise_scale=0.5, noise_scale_duration=0.6
    ),
]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    from transformers import VitsModel

    model: Any = VitsModel.from_pretrained(str(tiny_model_dir))
    return model.eval()


@pytest.fixture(scope="module")
def decoder(model: Any, tmp_path_factory: pytest.TempPathFactory) -> onnx_decoder.OnnxDecoder:
    found, _ = onnx_decoder.load(
        model.decoder, search=[], cache_dir=tmp_path_factory.mktemp("dec"), threads=1
    )
    return found


@pytest.fixture(scope="module")
def graph(
    model: Any, decoder: onnx_decoder.OnnxDecoder, tmp_path_factory: pytest.TempPathFactory
) -> onnx_graph.CpuGraph:
    found, _ = onnx_graph.load(
        model,
        decoder,
        search=[],
        cache_dir=tmp_path_factory.mktemp("graph"),
        threads=1,
        decode_chunk_frames=2000,
    )
    return found


def test_the_staged_forward_on_torch_is_the_torch_path_bit_for_bit(model: Any) -> None:
    # The host step between the stages draws exactly the torch path's noise and expands exactly its prior.
    with torch.inference_mode():
        for item in ITEMS:
            expected = forward_items(model, [item])
            found = forward_staged(model, TorchStages(model), [item])
            assert torch.equal(found.waveform, expected.waveform)
            assert found.durations == expected.durations
            assert found.lengths == expected.lengths


def test_expanding_a_prior_repeats_each_token_over_its_frames() -> None:
    values = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    expanded = expand(values, [[2, 0, 1]], length=4)
    assert expanded.tolist() == [[[1.0, 1.0, 5.0, 0.0], [2.0, 2.0, 6.0, 0.0]]]


def test_on_onnx_runtime_durations_are_eager_and_audio_is_eager_up_to_rounding(
    model: Any, graph: onnx_graph.CpuGraph
) -> None:
    with torch.inference_mode():
        for item in ITEMS:
            expected = forward_items(model, [item])
            found = graph.forward([item])
            assert found.durations == expected.durations  # frames per token, for speech marks
            assert found.lengths == expected.lengths == [sum(found.durations[0]) * found.hop]
            assert found.waveform.shape == expected.waveform.shape
            assert (
                float((found.waveform - expected.waveform).abs().max()) <= onnx_graph_check.WAVEFORM_TOLERANCE
            )
            assert float(found.waveform.abs().max()) > 0.01  # real audio, not silence that trivially matches


def test_a_padded_batch_gives_each_item_its_audio_alone(graph: onnx_graph.CpuGraph) -> None:
    with torch.inference_mode():
        batch = graph.forward(ITEMS)
        for index, item in enumerate(ITEMS):
            alone = graph.forward([item])
            assert batch.durations[index] == alone.durations[0]
            assert batch.lengths[index] == alone.lengths[0]
            assert float((batch.item(index) - alone.item(0)).abs().max()) <= 1e-4


def test_the_seed_alone_decides_the_audio(graph: onnx_graph.CpuGraph) -> None:
    with torch.inference_mode():
        first, again = graph.forward(ITEMS[:1]), graph.forward(ITEMS[:1])
        other = graph.forward([ForwardItem(ITEMS[0].input_ids, 99, 1.0, 0.667, 0.8)])
    assert torch.equal(first.waveform, again.waveform)
    assert other.waveform.shape != first.waveform.shape or not torch.equal(other.waveform, first.waveform)


def test_a_long_item_is_decoded_in_chunks_with_the_same_audio(model: Any, graph: onnx_graph.CpuGraph) -> None:
    chunked = onnx_graph.CpuGraph(model, graph.stages, graph.decoder, decode_chunk_frames=40)
    with torch.inference_mode():
        whole, parts = graph.forward(ITEMS[2:]), chunked.forward(ITEMS[2:])
    assert whole.lengths[0] > 40 * whole.hop
    assert parts.durations == whole.durations
    assert float((parts.waveform - whole.waveform).abs().max()) <= 1e-4


def test_the_exports_are_written_once_and_reused_by_their_fingerprint(
    model: Any, decoder: onnx_decoder.OnnxDecoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a first load exported front and flow
    onnx_graph.load(model, decoder, search=[], cache_dir=tmp_path, threads=1, decode_chunk_frames=2000)
    exported = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert exported == sorted(onnx_graph.file_names(model))

    # When: a second load, with exporting made impossible
    def no_export(*_: Any, **__: Any) -> Any:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_graph, "export", no_export)
    again, check = onnx_graph.load(
        model, decoder, search=[], cache_dir=tmp_path, threads=1, decode_chunk_frames=2000
    )

    # Then
    assert again.paths == tuple(tmp_path / name for name in onnx_graph.file_names(model))
    assert check.waveform <= onnx_graph_check.WAVEFORM_TOLERANCE


def test_other_weights_get_another_fingerprint(model: Any) -> None:
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.flow.flows[0].conv_post.weight.add_(1e-3)
    assert onnx_graph.fingerprint(changed) != onnx_graph.fingerprint(model)
    assert onnx_graph.fingerprint(copy.deepcopy(model)) == onnx_graph.fingerprint(model)


@pytest.mark.parametrize("part", ["text_encoder", "flow"])
def test_an_export_of_other_weights_fails_verification_and_is_exported_anew(
    model: Any, decoder: onnx_decoder.OnnxDecoder, tmp_path: Path, part: str
) -> None:
    # Given: another model's front and flow under this model's names, where the worker looks first
    other = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in getattr(other, part).parameters():
            parameter.mul_(-1.5)
    planted = tmp_path / "model"
    for made, name in zip(
        onnx_graph.export(other, tmp_path / "other"), onnx_graph.file_names(model), strict=True
    ):
        planted.mkdir(exist_ok=True)
        made.rename(planted / name)
    wrong = onnx_graph.OnnxStages(*(planted / n for n in onnx_graph.file_names(model)), threads=1)
    with pytest.raises(onnx_graph_check.GraphExportError, match="differ"):
        onnx_graph_check.verify(model, wrong, decoder)

    # When
    loaded, check = onnx_graph.load(
        model, decoder, search=[planted], cache_dir=tmp_path / "cache", threads=1, decode_chunk_frames=2000
    )

    # Then: a fresh, verified export in the cache
    assert loaded.paths[0].parent == tmp_path / "cache"
    assert check.log_duration <= onnx_graph_check.LOG_DURATION_TOLERANCE


def test_an_export_is_readable_by_every_user(model: Any, tmp_path: Path) -> None:
    for exported in onnx_graph.export(model, tmp_path):
        assert exported.stat().st_mode & 0o777 == 0o644


def test_under_auto_a_failing_export_leaves_front_and_flow_on_torch(
    model: Any,
    decoder: onnx_decoder.OnnxDecoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise onnx_graph_check.GraphExportError("exporting vits-front failed: disk full")

    monkeypatch.setattr(onnx_graph, "export", broken)
    kwargs: dict[str, Any] = {"source": tmp_path / "none", "cache_dir": tmp_path, "threads": 1}
    with caplog.at_level(logging.WARNING, logger="tts_worker"):
        assert onnx_graph.load_for(model, decoder, decode_chunk_frames=2000, required=False, **kwargs) is None
    assert "front and flow stay on torch" in caplog.text
    with pytest.raises(ModelLoadError, match=r"TTS_CPU_GRAPH=onnx failed: .*disk full"):
        onnx_graph.load_for(model, decoder, decode_chunk_frames=2000, required=True, **kwargs)


@pytest.mark.parametrize(
    ("requested", "decoder_runtime", "device", "expected"),
    [
        ("auto", "onnxruntime", "cpu", "onnx"),
        ("auto", "torch", "cpu", "torch"),
        ("auto", "torch", "cuda", "torch"),
        ("onnx", "onnxruntime", "cpu", "onnx"),
        ("torch", "onnxruntime", "cpu", "torch"),
    ],
)
def test_the_cpu_graph_follows_device_and_decoder(
    requested: CpuGraphSetting, decoder_runtime: str, device: str, expected: str
) -> None:
    assert (
        onnx_graph.resolve(requested, decoder_runtime=decoder_runtime, device=torch.device(device))
        == expected
    )


@pytest.mark.parametrize(
    ("decoder_runtime", "device", "message"),
    [("onnxruntime", "cuda", "CPU only"), ("torch", "cpu", "decoder on ONNX Runtime")],
)
def test_an_impossible_cpu_graph_is_a_start_up_error(decoder_runtime: str, device: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        onnx_graph.resolve("onnx", decoder_runtime=decoder_runtime, device=torch.device(device))


def test_the_setting_is_tts_cpu_graph_and_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    assert load_settings(WorkerSettings).tts_cpu_graph == "auto"
    monkeypatch.setenv("TTS_CPU_GRAPH", "torch")
    assert load_settings(WorkerSettings).tts_cpu_graph == "torch"
    monkeypatch.setenv("TTS_CPU_GRAPH", "tensorrt")
    with pytest.raises(ConfigurationError, match="TTS_CPU_GRAPH"):
        load_settings(WorkerSettings)
