"""VITS inference as three stages and one host step between them, so the stages can run on another runtime.

`vits_forward.forward_items` in the same order, split where the data decides a shape:
  * front: text encoder and stochastic duration predictor (reverse), given each item's duration noise;
  * host: per-token frames (`ceil(exp(log_duration) * length_scale)`, torch, exactly as forward_items), each
    item's prior noise drawn in its own shape from the same generator right after its duration noise, and each
    token's prior expanded over its frames (a repeat: forward_items' 0/1 matmul picks the same values);
  * flow: prior sampling and the reverse flow, given that noise;
  * decoder: each item alone, unpadded (chunked when long), so a padded batch needs no masked decoder.
torch's CPU `normal_` does not give prefixes of a longer draw, and the frame count is known only after the
front, so the noise is drawn on the host between the stages: it is the very noise the torch path draws for
the item's seed. With `TorchStages` this is forward_items' arithmetic (a test holds the two bit-identical on
lone items); onnx_graph supplies the same stages on ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from tts_worker.synthesizer.vits_forward import (
    Decode,
    ForwardItem,
    ForwardOutput,
    _decode,
    _decode_in_chunks,
    _lengths_mask,
    _log_durations,
    _per_item,
)


class Stages(Protocol):
    """The two parts of VITS with no data-dependent shape, for a batch padded to its longest item."""

    def front(
        self, ids: torch.Tensor, mask: torch.Tensor, duration_noise: torch.Tensor, noise_scale_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, tokens) ids and 0/1 float mask, (batch, 2, tokens) noise, (batch, 1, 1) scale ->
        log_duration (batch, 1, tokens), prior means and log variances (batch, tokens, channels)."""

    def flow(
        self,
        means: torch.Tensor,
        log_variances: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """(batch, channels, frames) x3, (batch, 1, 1), (batch, 1, frames) -> the masked spectrogram."""


class TorchStages:
    """The stages on the model's own torch modules: forward_items' calls, unchanged."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def front(
        self, ids: torch.Tensor, mask: torch.Tensor, duration_noise: torch.Tensor, noise_scale_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attention_mask = None if ids.shape[0] == 1 else mask.to(torch.long)  # as forward_items
        input_mask = mask.unsqueeze(-1)
        encoded = self.model.text_encoder(
            input_ids=ids, padding_mask=input_mask, attention_mask=attention_mask, return_dict=True
        )
        hidden = encoded.last_hidden_state.transpose(1, 2)
        log_duration = _log_durations(
            self.model, hidden, input_mask.transpose(1, 2), duration_noise, noise_scale_w
        )
        return log_duration, encoded.prior_means, encoded.prior_log_variances

    def flow(
        self,
        means: torch.Tensor,
        log_variances: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        latents = means + noise * torch.exp(log_variances) * noise_scale
        return self.model.flow(latents, mask, None, reverse=True) * mask  # type: ignore[no-any-return]


def token_frames(log_duration: torch.Tensor, mask: torch.Tensor, length_scale: torch.Tensor) -> torch.Tensor:
    """Frames per token (batch, 1, tokens), float: forward_items' expression, on the host."""
    return torch.ceil(torch.exp(log_duration) * mask.unsqueeze(1) * length_scale)


def expand(values: torch.Tensor, frames: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    """(batch, tokens, channels) -> (batch, channels, length): token k's row repeated frames[row][k] times,
    zeros after the item's end (forward_items' alignment matmul selects exactly these values)."""
    batch, _, channels = values.shape
    out = torch.zeros((batch, length, channels), dtype=values.dtype)
    for row, counts in enumerate(frames):
        repeated = torch.repeat_interleave(values[row, : len(counts)], torch.tensor(counts), dim=0)
        out[row, : repeated.shape[0]] = repeated
    return out.transpose(1, 2)


def forward_staged(
    model: Any,
    stages: Stages,
    items: Sequence[ForwardItem],
    *,
    decode: Decode | None = None,
    decode_chunk_frames: int | None = None,
) -> ForwardOutput:
    """forward_items (float32, CPU) through `stages`; each item decoded alone by `decode` (default: eager)."""
    if not items:
        raise ValueError("forward_staged needs at least one item")
    batch = len(items)
    token_lengths = [len(item.input_ids) for item in items]
    longest = max(token_lengths)
    ids = torch.zeros((batch, longest), dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : token_lengths[row]] = torch.as_tensor(list(item.input_ids), dtype=torch.long)
    mask = (torch.arange(longest).unsqueeze(0) < torch.tensor(token_lengths).unsqueeze(1)).to(torch.float32)
    device = torch.device("cpu")

    generators = [torch.Generator().manual_seed(item.seed) for item in items]
    duration_noise = torch.zeros((batch, 2, longest))
    for row, generator in enumerate(generators):
        duration_noise[row, :, : token_lengths[row]] = torch.randn(
            (1, 2, token_lengths[row]), generator=generator
        )[0]
    log_duration, means, log_variances = stages.front(
        ids, mask, duration_noise, _per_item([i.noise_scale_duration for i in items], device)
    )
    base_rate = float(model.speaking_rate)
    length_scale = _per_item([1.0 / (base_rate * i.speaking_rate) for i in items], device)
    duration = token_frames(log_duration, mask, length_scale)
    per_token = [
        row[:length] for row, length in zip(duration[:, 0, :].long().tolist(), token_lengths, strict=True)
    ]
    frame_list = [max(sum(row), 1) for row in per_token]  # forward_items' clamp_min(..., 1)
    output_length = max(frame_list)

    # Each item's prior noise after its duration noise, in the layout VitsModel.forward's randn_like fills.
    channels = means.shape[-1]
    prior_noise = torch.zeros((batch, channels, output_length))
    for row, generator in enumerate(generators):
        buffer = torch.empty((1, frame_list[row], channels)).transpose(1, 2)
        prior_noise[row, :, : frame_list[row]] = buffer.normal_(generator=generator)[0]
    output_mask = _lengths_mask(torch.tensor(frame_list), output_length, torch.float32)
    spectrogram = stages.flow(
        expand(means, per_token, output_length),
        expand(log_variances, per_token, output_length),
        prior_noise,
        _per_item([i.noise_scale for i in items], device),
        output_mask,
    )

    decode = decode or (lambda part: _decode(model.decoder, part, None))
    hop = math.prod(model.config.upsample_rates)
    waveform = torch.zeros((batch, output_length * hop))
    finite = []
    for row, frames in enumerate(frame_list):
        alone = spectrogram[row : row + 1, :, :frames]
        if decode_chunk_frames is not None and frames > decode_chunk_frames:
            before_tanh = _decode_in_chunks(model.decoder, alone, decode_chunk_frames, decode)
        else:
            before_tanh = decode(alone)
        finite.append(bool(torch.isfinite(before_tanh).all()))
        waveform[row, : frames * hop] = torch.tanh(before_tanh)[0, 0]
    return ForwardOutput(
        waveform=waveform,
        lengths=[f * hop for f in frame_list],
        finite=finite,
        durations=per_token,
        hop=hop,
    )
