"""The check an ONNX Runtime front and flow pass before the worker trusts them: each stage against eager.

Fixed token ids and fixed noise, alone at lengths on both sides of the relative-attention window and in a
padded batch. Durations must equal eager's (a rounding flip at an exact tie excepted); prior statistics,
spectrogram and the short items' audio must lie within tolerances measured on the full MMS architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tts_worker.synthesizer import onnx_decoder
from tts_worker.synthesizer.graph_forward import Stages, TorchStages, expand, token_frames
from tts_worker.synthesizer.vits_forward import Decode, ForwardItem, _lengths_mask


class GraphExportError(RuntimeError):
    """The front or the flow could not be exported, loaded or verified on ONNX Runtime."""


# Largest difference allowed from eager, in each stage's own units. Measured on the full MMS architecture: log
# durations 2.4e-5 at 400 tokens, prior statistics 6e-6, spectrogram 8e-6, audio 5e-5 (1e-4 on tiny-random),
# float rounding of reordered sums; a graph of other weights is off by whole units. A token's frames may
# differ only where eager's unrounded value lies within that log-duration tolerance of a whole frame (a tie
# that float rounding may break either way).
LOG_DURATION_TOLERANCE = 1e-4
PRIOR_TOLERANCE = 1e-4
SPECTROGRAM_TOLERANCE = 1e-3
# The waveform after the tanh, as onnx_decoder.TOLERANCE (full scale 1.0; a 16-bit step is 3.1e-5).
WAVEFORM_TOLERANCE = onnx_decoder.TOLERANCE
# Token counts checked: below, at and past the relative-attention window (4 in MMS), which the tracer could
# have frozen to the example's size; and a padded batch.
VERIFY_TOKENS = (3, 40, 160)
VERIFY_BATCH = (40, 3)
VERIFY_DECODED_TOKENS = 40  # the longest item whose audio the check decodes (the decoder is checked apart)


@dataclass(frozen=True, slots=True)
class Check:
    """The largest difference from eager at each stage, over the verification inputs."""

    log_duration: float
    prior: float
    spectrogram: float
    waveform: float
    ties: int  # tokens whose frames differ by one at a tie (allowed); any other difference fails


def _largest(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if a.shape != b.shape:
        return float("inf")
    difference = (a - b).abs() if mask is None else (a - b).abs() * mask
    return float(difference.max()) if difference.numel() else 0.0


def _verify_inputs(model: Any) -> list[list[ForwardItem]]:
    generator = torch.Generator().manual_seed(20261201)
    vocab = int(model.config.vocab_size)

    def item(tokens: int, seed: int) -> ForwardItem:
        ids = torch.randint(1, vocab, (tokens,), generator=generator).tolist()
        return ForwardItem(ids, seed, speaking_rate=1.0, noise_scale=0.667, noise_scale_duration=0.8)

    alone = [[item(t, seed=t)] for t in VERIFY_TOKENS]
    return [*alone, [item(t, seed=100 + t) for t in VERIFY_BATCH]]


def compare(model: Any, stages: Stages, decoder: Decode) -> Check:
    """Each stage of `stages` against eager on the same inputs (fixed ids, fixed seeds): the front on each
    case, the flow on eager's expanded prior, the audio of the short cases through `decoder` (checked against
    the eager decoder on its own)."""
    eager = TorchStages(model)
    log_duration = prior = spectrogram = waveform = 0.0
    ties = 0
    rate = float(model.speaking_rate)
    with torch.inference_mode():
        for items in _verify_inputs(model):
            lengths = [len(i.input_ids) for i in items]
            longest = max(lengths)
            ids = torch.zeros((len(items), longest), dtype=torch.long)
            for row, i in enumerate(items):
                ids[row, : lengths[row]] = torch.tensor(list(i.input_ids))
            mask = (torch.arange(longest)[None] < torch.tensor(lengths)[:, None]).to(torch.float32)
            noise = (
                torch.randn((len(items), 2, longest), generator=torch.Generator().manual_seed(1))
                * mask[:, None]
            )
            scale_w = torch.full((len(items), 1, 1), 0.8)
            expected = eager.front(ids, mask, noise, scale_w)
            found = stages.front(ids, mask, noise, scale_w)
            log_duration = max(log_duration, _largest(expected[0], found[0], mask[:, None]))
            for e, f in zip(expected[1:], found[1:], strict=True):
                prior = max(prior, _largest(e, f, mask[:, :, None]))
            length_scale = torch.full((len(items), 1, 1), 1.0 / rate)
            want, got = (
                token_frames(expected[0], mask, length_scale),
                token_frames(found[0], mask, length_scale),
            )
            if want.shape != got.shape:
                raise GraphExportError("the exported front returns durations of another shape")
            unrounded = torch.exp(expected[0]) * mask[:, None] * length_scale
            differ = want != got
            at_tie = (unrounded - torch.round(unrounded)).abs() <= unrounded * LOG_DURATION_TOLERANCE
            if bool((differ & ~at_tie).any()) or bool(((want - got).abs() > 1).any()):
                raise GraphExportError("the exported front gives tokens other durations than eager")
            ties += int(differ.sum())

            # The flow on eager's own prior, so a tie above cannot shift the frames compared here.
            per_token = [row[:n] for row, n in zip(want[:, 0].long().tolist(), lengths, strict=True)]
            frames = [max(sum(r), 1) for r in per_token]
            out_mask = _lengths_mask(torch.tensor(frames), max(frames), torch.float32)
            channels = expected[1].shape[-1]
            prior_noise = torch.randn(
                (len(items), channels, max(frames)), generator=torch.Generator().manual_seed(2)
            )
            flow_inputs = (
                expand(expected[1], per_token, max(frames)),
                expand(expected[2], per_token, max(frames)),
                prior_noise * out_mask,
                torch.full((len(items), 1, 1), 0.667),
                out_mask,
            )
            want_spectrogram, got_spectrogram = eager.flow(*flow_inputs), stages.flow(*flow_inputs)
            spectrogram = max(spectrogram, _largest(want_spectrogram, got_spectrogram))
            for row, n in enumerate(frames):
                if lengths[row] <= VERIFY_DECODED_TOKENS:
                    a = torch.tanh(decoder(want_spectrogram[row : row + 1, :, :n]))
                    b = torch.tanh(decoder(got_spectrogram[row : row + 1, :, :n]))
                    waveform = max(waveform, _largest(a, b))
    return Check(log_duration, prior, spectrogram, waveform, ties)


def verify(model: Any, stages: Stages, decoder: Decode) -> Check:
    """`compare`, or GraphExportError when a stage exceeds its tolerance."""
    found = compare(model, stages, decoder)
    limits = {
        "log durations": (found.log_duration, LOG_DURATION_TOLERANCE),
        "prior statistics": (found.prior, PRIOR_TOLERANCE),
        "spectrogram": (found.spectrogram, SPECTROGRAM_TOLERANCE),
        "waveform": (found.waveform, WAVEFORM_TOLERANCE),
    }
    for what, (value, limit) in limits.items():
        if not value <= limit:
            raise GraphExportError(
                f"the exported graph's {what} differ from eager by {value:.3g} (tolerance {limit})"
            )
    return found
