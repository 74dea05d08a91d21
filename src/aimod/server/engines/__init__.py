"""Engines: what runs the model behind the routes, chosen by ``[engine] kind`` in ``server.toml``.

The text routes talk to a :class:`TextEngine`, the vision routes to a :class:`VisionEngine`; neither knows HTTP
(they raise :class:`~aimod.errors.RequestError` subclasses). Today there is one of each:

* ``hf`` (:mod:`aimod.server.engines.hf`): batched Hugging Face ``generate`` with the AIM logits processor;
* ``vllm`` (:mod:`aimod.server.engines.vllm`): vLLM's async engine in-process (continuous batching) with
  :class:`aimod.vllm.AimodLogitsProcessor`; it needs the ``.venv-vllm`` environment (docs/vllm.md);
* ``batched`` (:mod:`aimod.server.engines.batched_vision`): the fixed-shape batcher of a vision model.

To add an engine, write one module with a class that has the
protocol's methods and the constructor signature of its family, and register it below as ``"module:Class"``; it
is imported only when a server is configured to use it, so its heavy dependencies stay optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from torch import Tensor

    from aimod.catalog import VisionModel
    from aimod.modulation import Modulation
    from aimod.noise import NoiseSource
    from aimod.server.batching import BatchStats, ShutdownSummary
    from aimod.server.config import ServerConfig, ServerSettings
    from aimod.server.text import TextRow
    from aimod.server.vision import VisionRow

__all__ = ["TEXT_ENGINES", "VISION_ENGINES", "Engine", "TextEngine", "VisionEngine", "text_engine", "vision_engine"]

TEXT_ENGINES = {"hf": "aimod.server.engines.hf:HFTextEngine", "vllm": "aimod.server.engines.vllm:VLLMTextEngine"}
"""Text engine kind -> ``"module:Class"``; the class is built as ``Class(model, tokenizer, noise, settings, config)``
(``config``: the whole :class:`~aimod.server.config.ServerConfig`, for engines with settings of their own)."""

VISION_ENGINES = {"batched": "aimod.server.engines.batched_vision:BatchedVisionEngine"}
"""Vision engine kind -> ``"module:Class"``; the class is built as ``Class(loaded, noise, settings)``."""


class Engine(Protocol):
    """What both families share: a lifetime (started and stopped by the app's lifespan) and counters."""

    stats: BatchStats
    """Batches, rows and the largest batch, for ``/healthz``."""

    def start(self) -> None:
        """Called on the running event loop when the server starts."""

    async def stop(self, timeout_s: float | None = None) -> ShutdownSummary:
        """Stops taking rows, answers what was accepted until ``timeout_s``, cuts the rest, releases the workers.

        Rows whose clients have gone are dropped, not computed. Idempotent: a second call returns the first's
        summary (the process starts the stop at its signal, the app's lifespan calls it again).
        """


class TextEngine(Engine, Protocol):
    """Prompts to token ids, their checks, and completions under each row's modulation."""

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation through the model's chat template (``InvalidRequestError`` if none)."""

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a plain prompt."""

    def check_length(self, ids: list[int], max_tokens: int, param: str) -> None:
        """Refuses empty prompts and prompts that leave no room for ``max_tokens`` (``InvalidRequestError``)."""

    def token_modulation(self, modulation: Modulation) -> Modulation:
        """The modulation with focus words turned into token ids."""

    async def complete(self, row: TextRow) -> dict[str, Any]:
        """The row's completion: ``text``, ``prompt_tokens``, ``completion_tokens``, ``finish_reason``."""


class VisionEngine(Engine, Protocol):
    """Images to pixels, and answers under each row's modulation."""

    id2label: Mapping[int, str]
    """The model's class names."""

    def decode(self, data: bytes, param: str = "image") -> Tensor:
        """uint8 ``(C, H, W)`` pixels of an encoded image (``TooLargeError``, ``InvalidRequestError``)."""

    async def answer(self, row: VisionRow) -> dict[str, Any]:
        """The row's answer: top-k ``labels``, or a segmentation's ``mask_png`` and ``shares``."""


def _class(registry: Mapping[str, str], kind: str) -> Any:
    module, _, name = registry[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def text_engine(
    kind: str,
    model: Any,
    tokenizer: Any,
    noise: NoiseSource,
    settings: ServerSettings,
    config: ServerConfig | None = None,
) -> TextEngine:
    """The text engine ``kind`` (a key of :data:`TEXT_ENGINES`) for a loaded causal LM."""
    engine: TextEngine = _class(TEXT_ENGINES, kind)(model, tokenizer, noise, settings, config)
    return engine


def vision_engine(kind: str, loaded: VisionModel, noise: NoiseSource, settings: ServerSettings) -> VisionEngine:
    """The vision engine ``kind`` (a key of :data:`VISION_ENGINES`) for a loaded vision model."""
    engine: VisionEngine = _class(VISION_ENGINES, kind)(loaded, noise, settings)
    return engine
