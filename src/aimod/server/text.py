"""Language-model requests: prompts to token ids, batched greedy generation under per-row modulation.

The decision at every step is the argmax of the modulated logits (the AIM decision rule): the tier's noise is
the only randomness, and it is keyed on each row's token prefix by :class:`~aimod.text.AimLogitsProcessor`, so
the same prompt always gets the same completion. Concurrent requests share one ``generate`` call (left
padded, one modulation per row); a :class:`~transformers.StoppingCriteria` follows each row, ends it at its own
``max_tokens``, end-of-sequence token or stop string, and streams its text as it grows. It also ends a row at
once when its client has gone (:attr:`TextRow.gone`) and every row when the server's shutdown deadline passes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from aimod.errors import AimodError, InvalidRequestError
from aimod.modulation import Modulation
from aimod.noise import NoiseSource
from aimod.text.focus import token_focus
from aimod.text.padding import eos_ids, left_pad, pad_id
from aimod.text.processor import AimLogitsProcessor

__all__ = ["TextRow", "TextService"]


@dataclass(frozen=True)
class TextRow:
    """One completion to compute."""

    ids: list[int]
    """The prompt's token ids (chat template applied)."""
    modulation: Modulation
    """The tenant's σ and the request's focus, as token ids."""
    max_tokens: int
    stop: tuple[str, ...] = ()
    on_delta: Callable[[str], None] | None = None
    """Called (from the model thread) with each new piece of text, for streaming."""
    gone: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    """Set by the route when the client hangs up: the row ends at its next step, its answer unsent."""


class _RowState:
    """One row's progress: its tokens, its text, where it stops, what was streamed."""

    def __init__(self, row: TextRow, tokenizer: Any, eos: set[int]) -> None:
        self.row = row
        self.tokenizer = tokenizer
        self.eos = eos
        self.tokens: list[int] = []
        self.text = ""
        self.sent = 0
        self.done = False
        self.finish_reason = "length"
        self.hold = max((len(s) for s in row.stop), default=1) - 1

    def push(self, token: int) -> None:
        if token in self.eos:
            self._finish("stop")
            return
        self.tokens.append(token)
        if not self.row.stop and self.row.on_delta is None:  # nothing to watch: decode once, at the end
            if len(self.tokens) >= self.row.max_tokens:
                self._finish("length")
            return
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        cut = min((i for i in (self.text.find(s) for s in self.row.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self._finish("stop")
        elif len(self.tokens) >= self.row.max_tokens:
            self._finish("length")
        else:
            safe = len(self.text) - self.hold
            while safe > self.sent and self.text[safe - 1] == "\ufffd":  # an incomplete UTF-8 character
                safe -= 1
            self._emit(safe)

    def cancel(self) -> None:
        """Ends the row without sending anything more (its client has gone, or the deadline passed)."""
        self.done = True
        self.finish_reason = "cancelled"

    def _finish(self, reason: str) -> None:
        if not self.row.stop:  # (with stop strings, push already holds the cut text)
            self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        self.done = True
        self.finish_reason = reason
        self._emit(len(self.text))

    def _emit(self, upto: int) -> None:
        if upto > self.sent and self.row.on_delta is not None:
            self.row.on_delta(self.text[self.sent : upto])
        self.sent = max(self.sent, upto)


class _FollowRows:
    """The StoppingCriteria of one batch: feeds each row's newest token to its state, ends rows gone or aborted."""

    def __init__(self, states: list[_RowState], abort: threading.Event | None) -> None:
        self.states = states
        self.abort = abort

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1].tolist()
        aborted = self.abort is not None and self.abort.is_set()
        for state, token in zip(self.states, last, strict=True):
            if state.done:
                continue
            if aborted or state.row.gone.is_set():
                state.cancel()
            else:
                state.push(int(token))
        return torch.tensor([s.done for s in self.states], device=input_ids.device)


class TextService:
    """Prompt encoding, checks, and the batch function of a causal language model.

    Args:
        model: A transformers causal LM (eval mode).
        tokenizer: Its tokenizer.
        noise: ``KeyedNoise(secret)``.
    """

    def __init__(self, model: Any, tokenizer: Any, noise: NoiseSource) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.noise = noise
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.pad_id = pad_id(tokenizer)
        self.eos = eos_ids(model, tokenizer)

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation through the model's chat template, ready for the assistant's turn.

        Raises:
            InvalidRequestError: When the model has no chat template, or the template refuses the messages.
        """
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise InvalidRequestError(
                "This model has no chat template; use /v1/completions with a prompt.", param="messages"
            )
        try:
            text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        except Exception as error:  # jinja2 TemplateError and friends: the template refuses this conversation
            raise InvalidRequestError(
                f"The model's chat template refuses these messages: {str(error)[:200]}", param="messages"
            ) from None
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a plain prompt."""
        return list(self.tokenizer.encode(prompt, add_special_tokens=True))

    def check_length(self, ids: list[int], max_tokens: int, param: str) -> None:
        """Refuses empty prompts and prompts that leave no room for ``max_tokens`` in the context.

        Raises:
            InvalidRequestError: Naming ``param``.
        """
        if not ids:
            raise InvalidRequestError(f"`{param}` encodes to no tokens.", param=param, code="empty_prompt")
        if len(ids) + max_tokens > self.context:
            raise InvalidRequestError(
                f"`{param}` has {len(ids)} tokens; with max_tokens={max_tokens} that exceeds the model's context of "
                f"{self.context} tokens. Shorten the prompt or lower max_tokens.",
                param=param,
                code="context_length_exceeded",
            )

    def token_modulation(self, modulation: Modulation) -> Modulation:
        """The modulation with focus words turned into token ids."""
        try:
            return token_focus(self.tokenizer, modulation)
        except AimodError as error:
            raise InvalidRequestError(str(error), param="focus", code="invalid_focus") from None

    def run(self, rows: Sequence[TextRow], abort: threading.Event | None = None) -> list[dict[str, Any]]:
        """Completions of a batch of rows (the :class:`~aimod.server.batching.Batcher` function).

        Rows whose padded length plus the batch's largest ``max_tokens`` would overrun the context run alone.
        Once ``abort`` is set every row ends at its next step (``finish_reason`` ``"cancelled"``).
        """
        width = max(len(r.ids) for r in rows)
        if len(rows) > 1 and width + max(r.max_tokens for r in rows) > self.context:
            return [self._run([row], abort)[0] for row in rows]
        return self._run(rows, abort)

    @torch.no_grad()
    def _run(self, rows: Sequence[TextRow], abort: threading.Event | None) -> list[dict[str, Any]]:
        ids, mask = left_pad([r.ids for r in rows], self.pad_id)
        device = next(self.model.parameters()).device
        states = [_RowState(row, self.tokenizer, self.eos) for row in rows]
        processor = AimLogitsProcessor([r.modulation for r in rows], noise=self.noise, pad_token_id=self.pad_id)
        from transformers import StoppingCriteriaList

        self.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max(r.max_tokens for r in rows),
            do_sample=False,
            logits_processor=[processor],
            stopping_criteria=StoppingCriteriaList([_FollowRows(states, abort)]),
            pad_token_id=self.pad_id,
        )
        for state in states:
            if not state.done:  # generate stopped first (e.g. its own max length)
                state._finish("length")
        return [
            {
                "text": s.text,
                "prompt_tokens": len(s.row.ids),
                "completion_tokens": len(s.tokens),
                "finish_reason": s.finish_reason,
            }
            for s in states
        ]
