"""VitsModel inference for a padded batch in which every item's audio depends on that item alone.

transformers' `VitsModel.forward` draws its noise from torch's global generator with shapes set by the longest
item, and its HiFi-GAN decoder lets the padding after a short item leak into that item's last ~0.2 s. This
forward runs the same submodules (text_encoder, duration_predictor, flow, decoder) in the same order, but
  * draws item i's noise from a generator seeded with item i's seed, in item i's own shapes, then pads it;
  * takes speaking rate and noise scales per item;
  * masks the decoder's activations past each item's end before every convolution (batches only), which is
    what the zero padding of a convolution over that item alone does;
  * reports, per item, whether the decoder overflowed (inf or NaN before its final tanh).
A batch of one runs exactly the operations of `VitsModel.forward` after `torch.manual_seed(seed)`, so on the
CPU its waveform is bit-identical to the seed's; in a batch an item equals itself alone up to float rounding.
Single-speaker models only (every facebook/mms-tts-* checkpoint is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """One tokenized text and the parameters that shape its audio."""

    input_ids: Sequence[int]
    seed: int
    speaking_rate: float
    noise_scale: float
    noise_scale_duration: float


@dataclass(frozen=True, slots=True)
class ForwardOutput:
    """Waveforms of a batch, padded (batch, samples); each item's length in samples, whether every value
    of the item was finite up to the decoder's last layer, and the frames each of its tokens was given (the
    durations the flow and decoder used: a token's samples are its frames times `hop`)."""

    waveform: torch.Tensor
    lengths: list[int]
    finite: list[bool]
    durations: list[list[int]]
    hop: int

    def item(self, index: int) -> torch.Tensor:
        return self.waveform[index, : self.lengths[index]]


def _per_item(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """A (batch, 1, 1) float32 tensor: one value per item, broadcast over channels and time."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def _lengths_mask(lengths: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, size): 1 inside each item, 0 in its padding."""
    positions = torch.arange(size, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


def _log_durations(
    model: Any, hidden: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, noise_scale: torch.Tensor
) -> torch.Tensor:
    """VitsStochasticDurationPredictor(reverse=True) with the noise given instead of drawn."""
    predictor = model.duration_predictor
    if not model.config.use_stochastic_duration_prediction:
        return predictor(hidden, mask, None)  # type: ignore[no-any-return]
    inputs = predictor.conv_pre(hidden)
    inputs = predictor.conv_dds(inputs, mask)
    inputs = predictor.conv_proj(inputs) * mask
    flows = list(reversed(predictor.flows))
    flows = [*flows[:-2], flows[-1]]  # as transformers does: the second-to-last flow is unused in reverse
    latents = noise.to(device=inputs.device, dtype=inputs.dtype) * noise_scale.to(inputs.dtype)
    for flow in flows:
        latents = torch.flip(latents, [1])
        latents, _ = flow(latents, mask, global_conditioning=inputs, reverse=True)
    log_duration, _ = torch.split(latents, [1, 1], dim=1)
    return log_duration


def _resblock(block: Any, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """HifiGanResidualBlock.forward; with a mask, zeroing the padding before every convolution."""
    slope = block.leaky_relu_slope
    for conv1, conv2 in zip(block.convs1, block.convs2, strict=True):
        residual = hidden
        hidden = conv1(nn.functional.leaky_relu(hidden, slope))
        hidden = nn.functional.leaky_relu(hidden, slope)
        if mask is not None:
            hidden = hidden * mask
        hidden = conv2(hidden) + residual
        if mask is not None:
            hidden = hidden * mask
    return hidden


def _decode(decoder: Any, spectrogram: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """VitsHifiGan.forward up to, not including, its final tanh.

    With `frames` (each item's length in frames), every activation is zeroed past its item's end before
    the next convolution; without, the operations are exactly those of VitsHifiGan.forward.
    """
    config = decoder.config
    hidden = decoder.conv_pre(spectrogram)
    lengths = frames
    mask = None if lengths is None else _lengths_mask(lengths, hidden.shape[-1], hidden.dtype)
    if mask is not None:
        hidden = hidden * mask
    for i, rate in enumerate(config.upsample_rates):
        hidden = nn.functional.leaky_relu(hidden, config.leaky_relu_slope)
        hidden = decoder.upsampler[i](hidden)
        if lengths is not None:
            lengths = lengths * rate
            mask = _lengths_mask(lengths, hidden.shape[-1], hidden.dtype)
            hidden = hidden * mask
        blocks = decoder.resblocks[i * decoder.num_kernels : (i + 1) * decoder.num_kernels]
        summed = _resblock(blocks[0], hidden, mask)
        for block in blocks[1:]:
            summed += _resblock(block, hidden, mask)
        hidden = summed / decoder.num_kernels
    hidden = nn.functional.leaky_relu(hidden)
    return decoder.conv_post(hidden)  # type: ignore[no-any-return]


def decoder_reach(config: Any) -> int:
    """How many frames on either side of a frame can change its samples (the decoder's receptive field
    radius, rounded up at every stage)."""
    reach = 7 // 2  # conv_pre
    rate = 1
    for upsample, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
        reach += math.ceil(kernel / upsample)
        rate *= upsample
        resblock = max(
            sum((size - 1) // 2 * d + (size - 1) // 2 for d in dilations)
            for size, dilations in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            )
        )
        reach += math.ceil(resblock / rate)
    return reach + math.ceil((7 // 2) / rate)  # conv_post


# Decodes one unpadded item up to the final tanh: `_decode(decoder, x, None)` or its ONNX Runtime export.
Decode = Callable[[torch.Tensor], torch.Tensor]


def _decode_in_chunks(
    decoder: Any, spectrogram: torch.Tensor, chunk_frames: int, decode: Decode | None = None
) -> torch.Tensor:
    """One item decoded `chunk_frames` at a time, each chunk with the context its samples depend on.

    Frames beyond the reach of a chunk's kept part do not affect it, so this equals one decode of the whole
    spectrogram up to float rounding, while the activations stay small enough for the CPU's caches.
    """
    decode = decode or (lambda part: _decode(decoder, part, None))
    frames = spectrogram.shape[-1]
    reach = decoder_reach(decoder.config)
    hop = math.prod(decoder.config.upsample_rates)
    parts = []
    for start in range(0, frames, chunk_frames):
        end = min(start + chunk_frames, frames)
        left, right = max(0, start - reach), min(frames, end + reach)
        decoded = decode(spectrogram[:, :, left:right])
        parts.append(decoded[:, :, (start - left) * hop : (end - left) * hop])
    return torch.cat(parts, dim=-1)


def forward_items(
    model: Any,
    items: Sequence[ForwardItem],
    *,
    half: torch.dtype | None = None,
    decode_chunk_frames: int | None = None,
    decode: Decode | None = None,
) -> ForwardOutput:
    """One forward pass over `items`; call it in inference mode.

    `half` (float16 or bfloat16) runs the flow and the decoder, where nearly all the time goes, under
    autocast. Durations are always computed in float32: a rounding difference there would move whole frames.
    `decode_chunk_frames` decodes a lone item longer than that in chunks (see _decode_in_chunks).
    `decode` replaces the eager decoder for a lone item (a batch always runs the masked eager decoder).
    """
    if not items:
        raise ValueError("forward_items needs at least one item")
    device = model.text_encoder.embed_tokens.weight.device
    mask_dtype = model.text_encoder.embed_tokens.weight.dtype
    batch = len(items)
    token_lengths = [len(item.input_ids) for item in items]
    longest = max(token_lengths)
    ids = torch.zeros((batch, longest), dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item.input_ids)] = torch.as_tensor(list(item.input_ids), dtype=torch.long)
    ids = ids.to(device)
    if batch == 1:
        attention_mask = None  # as VitsModel.forward without a mask: nothing to hide
        input_mask = torch.ones_like(ids).unsqueeze(-1).to(mask_dtype)
    else:
        attention_mask = (torch.arange(longest).unsqueeze(0) < torch.tensor(token_lengths).unsqueeze(1)).to(
            device=device, dtype=torch.long
        )
        input_mask = attention_mask.unsqueeze(-1).to(mask_dtype)

    generators = [torch.Generator().manual_seed(item.seed) for item in items]

    encoded = model.text_encoder(
        input_ids=ids, padding_mask=input_mask, attention_mask=attention_mask, return_dict=True
    )
    hidden = encoded.last_hidden_state.transpose(1, 2)
    input_mask = input_mask.transpose(1, 2)

    # Each item's duration noise first, then (below) its prior noise: the order VitsModel.forward draws in.
    duration_noise = torch.zeros((batch, 2, longest))
    for row, generator in enumerate(generators):
        duration_noise[row, :, : token_lengths[row]] = torch.randn(
            (1, 2, token_lengths[row]), generator=generator
        )[0]
    log_duration = _log_durations(
        model, hidden, input_mask, duration_noise, _per_item([i.noise_scale_duration for i in items], device)
    )
    base_rate = float(model.speaking_rate)
    length_scale = _per_item([1.0 / (base_rate * i.speaking_rate) for i in items], device)
    duration = torch.ceil(torch.exp(log_duration) * input_mask * length_scale)
    frames = torch.clamp_min(torch.sum(duration, [1, 2]), 1).long()
    token_frames = duration[:, 0, :].long().cpu().tolist()

    # Expand each token's prior over its frames (VitsModel.forward's alignment arithmetic, unchanged).
    frame_list = [int(f) for f in frames.cpu()]
    output_length = max(frame_list)
    output_mask = _lengths_mask(frames, output_length, input_mask.dtype)
    attn_mask = torch.unsqueeze(input_mask, 2) * torch.unsqueeze(output_mask, -1)
    _, _, _, input_length = attn_mask.shape
    cum_duration = torch.cumsum(duration, -1).view(batch * input_length, 1)
    indices = torch.arange(output_length, dtype=duration.dtype, device=duration.device)
    valid_indices = (indices.unsqueeze(0) < cum_duration).to(attn_mask.dtype)
    valid_indices = valid_indices.view(batch, input_length, output_length)
    padded_indices = valid_indices - nn.functional.pad(valid_indices, [0, 0, 1, 0, 0, 0])[:, :-1]
    attn = padded_indices.unsqueeze(1).transpose(2, 3) * attn_mask
    prior_means = torch.matmul(attn.squeeze(1), encoded.prior_means).transpose(1, 2)
    prior_log_variances = torch.matmul(attn.squeeze(1), encoded.prior_log_variances).transpose(1, 2)

    # VitsModel.forward's randn_like(prior_means) fills a transposed view, in the order normal_ uses for one.
    channels = prior_means.shape[1]
    prior_noise = torch.zeros((batch, channels, output_length))
    for row, generator in enumerate(generators):
        buffer = torch.empty((1, frame_list[row], channels)).transpose(1, 2)
        prior_noise[row, :, : frame_list[row]] = buffer.normal_(generator=generator)[0]
    prior_noise = prior_noise.to(device=prior_means.device, dtype=prior_means.dtype)
    noise_scale = _per_item([i.noise_scale for i in items], device).to(prior_means.dtype)
    prior_latents = prior_means + prior_noise * torch.exp(prior_log_variances) * noise_scale
    with torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
        latents = model.flow(prior_latents, output_mask, None, reverse=True)
        spectrogram = latents * output_mask
        if batch > 1:
            before_tanh = _decode(model.decoder, spectrogram, frames)
        elif decode_chunk_frames is not None and output_length > decode_chunk_frames:
            before_tanh = _decode_in_chunks(model.decoder, spectrogram, decode_chunk_frames, decode)
        elif decode is not None:
            before_tanh = decode(spectrogram)
        else:
            before_tanh = _decode(model.decoder, spectrogram, None)
        waveform = torch.tanh(before_tanh)
    # Half precision overflows as inf (or NaN) before the tanh, which would hide it as full-scale clipping.
    finite = torch.isfinite(before_tanh).flatten(1).all(dim=1).tolist()
    hop = math.prod(model.config.upsample_rates)
    return ForwardOutput(
        waveform=waveform.squeeze(1),
        lengths=[f * hop for f in frame_list],
        finite=[bool(f) for f in finite],
        durations=[row[:length] for row, length in zip(token_frames, token_lengths, strict=True)],
        hop=hop,
    )
