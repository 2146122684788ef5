"""The model behind a small interface: load once, warm up, synthesize."""

from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer

__all__ = ["SynthesisItem", "SynthesisResult", "Synthesizer"]
