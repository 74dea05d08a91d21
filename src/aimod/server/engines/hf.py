"""The ``hf`` text engine: concurrent rows share one batched Hugging Face ``generate`` call.

:class:`~aimod.server.text.TextService` does the work (left padding, one modulation per row, a stopping
criterion per row); this adds the :class:`~aimod.server.batching.Batcher` that gathers concurrent requests, and
hands it the batcher's abort flag so that a generation ends at the shutdown deadline.
"""

from __future__ import annotations

from typing import Any

from aimod.noise import NoiseSource
from aimod.server.batching import Batched
from aimod.server.config import ServerConfig, ServerSettings
from aimod.server.text import TextRow, TextService

__all__ = ["HFTextEngine"]


class HFTextEngine(TextService, Batched[TextRow, dict[str, Any]]):
    """A transformers causal LM behind a batcher.

    Args:
        model: A transformers causal LM (eval mode).
        tokenizer: Its tokenizer.
        noise: The server's noise source.
        settings: ``[server]``: ``max_batch`` and ``batch_wait_ms``.
        config: The whole configuration (unused: this engine has no settings of its own).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        noise: NoiseSource,
        settings: ServerSettings,
        config: ServerConfig | None = None,
    ) -> None:
        super().__init__(model, tokenizer, noise)
        self._batch_with(
            lambda rows: self.run(rows, self._batcher.abort),
            max_batch=settings.max_batch,
            wait_ms=settings.batch_wait_ms,
        )

    async def complete(self, row: TextRow) -> dict[str, Any]:
        """The row's completion, computed in a batch with whatever else is waiting."""
        return await self._batcher.submit(row)
