"""The real transformers VITS path, on tiny-random: generated, saved, loaded with from_pretrained, spoken."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tts_common.exceptions import EmptyTokenization, ModelLoadError
from tts_worker.audio import encode_wav
from tts_worker.synthesizer.base import SynthesisItem, Synthesizer

pytestmark = pytest.mark.model

SENTENCE = "Hyvää huomenta, tämä on testi. Kuinka voit tänään?"


def wav(synthesizer: Synthesizer, text: str, seed: int, **params: float) -> bytes:
    [result] = synthesizer.synthesize([SynthesisItem(text=text, seed=seed, **params)])
    return encode_wav(result.waveform, sampling_rate=result.sampling_rate)


def test_tiny_random_is_saved_as_a_pretrained_directory(tiny_model_dir: Path) -> None:
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "tokenizer_config.json"} <= files


def test_tiny_random_has_the_mms_architecture_but_is_small(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer, VitsModel, VitsTokenizer

    model = VitsModel.from_pretrained(str(tiny_model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    assert isinstance(tokenizer, VitsTokenizer)
    assert (tokenizer.phonemize, tokenizer.is_uroman, tokenizer.add_blank, tokenizer.normalize) == (
        False,
        False,
        True,
        True,
    )
    assert sum(p.numel() for p in model.parameters()) < 100_000
    assert model.config.sampling_rate == 16_000


def test_synthesis_gives_a_16_khz_16_bit_wav(tiny_synthesizer: Synthesizer) -> None:
    # When
    started = time.perf_counter()
    body = wav(tiny_synthesizer, SENTENCE, seed=7)
    elapsed = time.perf_counter() - started

    # Then
    info = sf.info(io.BytesIO(body))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16_000, 1)
    # Calibrated to about 0.07 s of audio per character, like real MMS speech.
    assert 0.04 < info.duration / len(SENTENCE) < 0.1
    assert tiny_synthesizer.device == "cpu"
    assert elapsed < 2.0  # tiny means tiny: well under a second on two cores when the machine is idle


def test_the_same_text_and_seed_give_identical_bytes(tiny_synthesizer: Synthesizer) -> None:
    assert wav(tiny_synthesizer, SENTENCE, seed=7) == wav(tiny_synthesizer, SENTENCE, seed=7)


def test_another_text_or_seed_gives_other_audio(tiny_synthesizer: Synthesizer) -> None:
    reference = wav(tiny_synthesizer, SENTENCE, seed=7)
    assert wav(tiny_synthesizer, "Näkemiin, hyvää yötä.", seed=7) != reference
    assert wav(tiny_synthesizer, SENTENCE, seed=8) != reference


def test_an_items_audio_does_not_depend_on_its_neighbours(tiny_synthesizer: Synthesizer) -> None:
    alone = tiny_synthesizer.synthesize([SynthesisItem(text="Kissa.", seed=3)])[0]
    together = tiny_synthesizer.synthesize(
        [SynthesisItem(text=SENTENCE, seed=1), SynthesisItem(text="Kissa.", seed=3)]
    )[1]
    assert np.array_equal(alone.waveform, together.waveform)


def test_a_faster_speaking_rate_gives_shorter_audio(tiny_synthesizer: Synthesizer) -> None:
    normal = tiny_synthesizer.synthesize([SynthesisItem(text=SENTENCE, seed=7)])[0]
    fast = tiny_synthesizer.synthesize([SynthesisItem(text=SENTENCE, seed=7, speaking_rate=2.0)])[0]
    assert fast.duration_s < 0.75 * normal.duration_s


@pytest.mark.parametrize("text", ["", "123 456", "你好", "   "])
def test_text_the_tokenizer_maps_to_nothing_raises_empty_tokenization(
    tiny_synthesizer: Synthesizer, text: str
) -> None:
    assert not tiny_synthesizer.is_speakable(text)
    with pytest.raises(EmptyTokenization):
        tiny_synthesizer.synthesize([SynthesisItem(text=text, seed=1)])


def test_upper_case_and_unknown_characters_are_normalised_away(tiny_synthesizer: Synthesizer) -> None:
    assert tiny_synthesizer.is_speakable("ÄÖÅ 123")
    assert wav(tiny_synthesizer, "KISSA", seed=1) == wav(tiny_synthesizer, "kissa", seed=1)


def test_an_added_token_outside_the_embedding_is_spoken_as_a_blank(tiny_synthesizer: Synthesizer) -> None:
    # "<unk>" is in tiny's vocabulary; the guard matters for checkpoints whose added tokens are not.
    assert tiny_synthesizer.synthesize([SynthesisItem(text="kissa <unk> <pad>", seed=1)])[0].duration_s > 0


def test_an_unknown_hub_id_offline_fails_with_a_message_naming_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    from tts_worker.synthesizer.loader import load_synthesizer

    # Given: no network, an empty hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    # When / Then
    with pytest.raises(ModelLoadError) as raised:
        load_synthesizer("no-such-org/mms-tts-xyz", device="cpu")
    assert "model 'no-such-org/mms-tts-xyz'" in raised.value.message
    assert "Traceback" not in raised.value.message


def test_a_missing_local_directory_fails_with_model_load_error(tmp_path: Path) -> None:
    from tts_worker.synthesizer.loader import load_synthesizer

    with pytest.raises(ModelLoadError, match="nothing-here"):
        load_synthesizer(str(tmp_path / "nothing-here"), device="cpu")


def test_cuda_asked_for_on_a_machine_without_it_fails_at_start(tiny_model_dir: Path) -> None:
    import torch

    from tts_worker.synthesizer.vits import VitsSynthesizer

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="TTS_DEVICE=cuda"):
        VitsSynthesizer.load(tiny_model_dir, device="cuda")


def test_the_generated_model_is_reused_from_the_cache(model_cache_dir: Path, tiny_model_dir: Path) -> None:
    from tts_worker.synthesizer.random_models import ensure_generated

    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_generated("tiny-random", model_cache_dir) == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_the_full_mms_architecture_has_36m_parameters() -> None:
    import torch
    from transformers import VitsModel

    from tts_worker.synthesizer.random_models import VOCABULARY, mms_config

    with torch.device("meta"):  # shapes only: no memory, no init time
        model = VitsModel(mms_config(len(VOCABULARY)))
    assert 36_000_000 < sum(p.numel() for p in model.parameters()) < 37_000_000


def test_each_language_has_its_own_generated_model(model_cache_dir: Path, tiny_model_dir: Path) -> None:
    from safetensors.numpy import load_file

    from tts_worker.synthesizer.random_models import (
        GENERATION_SEED,
        ensure_generated,
        generation_seed,
        is_generated,
    )

    # tiny-random keeps its fixed seed (tests and benchmarks compare against it); a language has its own
    assert generation_seed(None) == GENERATION_SEED
    assert len({generation_seed(None), generation_seed("fin"), generation_seed("eng")}) == 3
    assert generation_seed("fin") == generation_seed("fin")
    assert tiny_model_dir.name == "tiny-random-v1"
    assert all(is_generated(n) for n in ("tiny-random", "mms-random", "tiny-random-fin", "mms-random-swh"))
    assert not any(is_generated(n) for n in ("tiny-random-", "tiny-random-fi", "tiny-random-fin\n", "x"))
    # and the weights differ, so a job spoken by the wrong language's model shows in its audio
    fin = load_file(str(ensure_generated("tiny-random-fin", model_cache_dir) / "model.safetensors"))
    eng = load_file(str(ensure_generated("tiny-random-eng", model_cache_dir) / "model.safetensors"))
    assert fin.keys() == eng.keys()
    assert not all(np.array_equal(fin[k], eng[k]) for k in fin)


def test_a_single_model_synthesizer_ignores_the_model_id(tiny_synthesizer: Synthesizer) -> None:
    assert tiny_synthesizer.is_speakable("kissa", "some/other-model")
    assert tiny_synthesizer.sampling_rate_for("some/other-model") == tiny_synthesizer.sampling_rate
    tagged = tiny_synthesizer.synthesize([SynthesisItem(text="Kissa.", seed=3, model_id="x")])[0]
    plain = tiny_synthesizer.synthesize([SynthesisItem(text="Kissa.", seed=3)])[0]
    assert np.array_equal(tagged.waveform, plain.waveform)
