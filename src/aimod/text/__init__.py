"""Text: modulation of causal language models inside Hugging Face generation."""

from __future__ import annotations

from aimod.text.processor import AimLogitsProcessor, prefix_digest

__all__ = ["AimLogitsProcessor", "prefix_digest"]
