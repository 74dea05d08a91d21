"""Text: modulation of causal language models inside Hugging Face generation."""

from __future__ import annotations

from aimod.text.focus import expand_word, token_focus
from aimod.text.generation import generate
from aimod.text.processor import AimLogitsProcessor, prefix_digest

__all__ = ["AimLogitsProcessor", "expand_word", "generate", "prefix_digest", "token_focus"]
