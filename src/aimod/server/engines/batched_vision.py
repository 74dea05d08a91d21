"""The ``batched`` vision engine: concurrent images share fixed-shape forward passes.

:class:`~aimod.server.vision.VisionService` does the work (fixed-shape batches, content keys, modulation); this
adds the :class:`~aimod.server.batching.Batcher` that gathers concurrent requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimod.catalog import VisionModel
from aimod.noise import NoiseSource
from aimod.server.batching import Batched
from aimod.server.config import ServerSettings
from aimod.server.vision import VisionRow, VisionService

__all__ = ["BatchedVisionEngine"]


class BatchedVisionEngine(VisionService, Batched[VisionRow, dict[str, Any]]):
    """A vision model behind a batcher.

    Args:
        loaded: The model (:func:`aimod.load`).
        noise: The server's noise source.
        settings: ``[server]``: keying, batch size and image limits.
    """

    def __init__(self, loaded: VisionModel, noise: NoiseSource, settings: ServerSettings) -> None:
        super().__init__(loaded, noise, settings)
        self.id2label: Mapping[int, str] = loaded.id2label
        self._batch_with(self.run, max_batch=settings.max_batch, wait_ms=settings.batch_wait_ms)

    async def answer(self, row: VisionRow) -> dict[str, Any]:
        """The row's answer, computed in a fixed-shape batch with whatever else is waiting."""
        return await self._batcher.submit(row)
