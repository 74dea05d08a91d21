"""The OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` (language models).

Each route lists its dependencies in the order of its refusals (the key, the kind of model, the body), then
checks what only the route knows (the model's name, ``max_tokens``, the prompt) and hands one
:class:`~aimod.server.text.TextRow` to the text engine. Streamed answers are server-sent events in OpenAI's
chunk format; an error after the stream began arrives as a last ``data:`` event in the error shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from aimod.errors import InvalidRequestError, RequestError
from aimod.server.deps import JsonBodyRoute, body_limit, check_model, current_served, tenant, text_engine
from aimod.server.disconnect import unless_gone
from aimod.server.engines import TextEngine
from aimod.server.errors import error_body, request_error_body
from aimod.server.logs import event
from aimod.server.schemas import ChatRequest, CompletionRequest
from aimod.server.served import Served
from aimod.server.tenants import Tenant
from aimod.server.text import TextRow

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JsonBodyRoute)

ServedDep = Annotated[Served, Depends(current_served)]
TenantDep = Annotated[Tenant, Depends(tenant)]
TextDep = Annotated[TextEngine, Depends(text_engine)]
BodyLimit = Annotated[None, Depends(body_limit)]


@router.get("/models")
async def models(request: Request, served: ServedDep, caller: TenantDep) -> dict[str, Any]:
    """The served model, with the caller's tier and the focus policy."""
    entry = {
        "id": served.name,
        "object": "model",
        "created": int(request.app.state.started),
        "owned_by": "aimod",
        "aimod": {**served.describe(), "tier": caller.tier},
    }
    return {"object": "list", "data": [entry]}


@router.post("/chat/completions")
async def chat_completions(
    request: Request, served: ServedDep, caller: TenantDep, text: TextDep, _: BodyLimit, body: ChatRequest
) -> Response:
    """OpenAI chat completions under the caller's tier; ``focus`` is an extra body field."""
    check_model(served, body.model)
    limit = _max_tokens(served, body.max_completion_tokens or body.max_tokens)
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    _check_chars(served, [m["content"] for m in messages], "messages")
    if not any(m["content"].strip() for m in messages):
        raise InvalidRequestError("Every message is empty; send some text.", param="messages", code="empty_prompt")
    row = await run_in_threadpool(_row, served, caller, text, body, lambda: text.chat_ids(messages), limit, "messages")
    return await _answer(request, served, text, row, body, chat=True)


@router.post("/completions")
async def completions(
    request: Request, served: ServedDep, caller: TenantDep, text: TextDep, _: BodyLimit, body: CompletionRequest
) -> Response:
    """OpenAI (legacy) completions under the caller's tier; ``focus`` is an extra body field."""
    check_model(served, body.model)
    limit = _max_tokens(served, body.max_tokens)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise InvalidRequestError(
            f"`prompt` must be one string (got {len(prompts)}); send one request per prompt.", param="prompt"
        )
    _check_chars(served, prompts, "prompt")
    if not prompts[0].strip():
        raise InvalidRequestError("`prompt` is empty.", param="prompt", code="empty_prompt")
    encode = lambda: text.prompt_ids(prompts[0])  # noqa: E731
    row = await run_in_threadpool(_row, served, caller, text, body, encode, limit, "prompt")
    return await _answer(request, served, text, row, body, chat=False)


def _max_tokens(served: Served, requested: int | None) -> int:
    settings = served.config.server
    value = requested or settings.default_max_tokens
    if value > settings.max_new_tokens:
        raise InvalidRequestError(
            f"`max_tokens` is {value}; this server allows at most {settings.max_new_tokens}.", param="max_tokens"
        )
    return value


def _check_chars(served: Served, texts: list[str], param: str) -> None:
    """Refuses a prompt over ``[server] max_prompt_chars``, before anything tokenises it."""
    limit = served.config.server.max_prompt_chars
    size = sum(len(t) for t in texts)
    if size > limit:
        raise InvalidRequestError(
            f"`{param}` has {size} characters; this server takes at most {limit}. Shorten the prompt.",
            param=param,
            code="context_length_exceeded",
        )


def _row(
    served: Served,
    caller: Tenant,
    text: TextEngine,
    body: ChatRequest | CompletionRequest,
    encode: Callable[[], list[int]],
    limit: int,
    param: str,
) -> TextRow:
    """What both routes share, run in a worker thread as it tokenises.

    The prompt's ids, the length check, and the row's modulation (the tier's σ, the focus words as token ids).
    """
    ids = encode()
    text.check_length(ids, limit, param)
    modulation = text.token_modulation(served.policy.modulation(caller, body.focus))
    return TextRow(ids, modulation, limit, body.stops())


async def _answer(
    request: Request,
    served: Served,
    text: TextEngine,
    row: TextRow,
    body: ChatRequest | CompletionRequest,
    *,
    chat: bool,
) -> Response:
    ident = ("chatcmpl-" if chat else "cmpl-") + request.state.id
    reply = _Reply(ident, served.name, int(time.time()), chat=chat)
    if not body.stream:
        return JSONResponse(reply.whole(await unless_gone(request, text.complete(row), row.gone)))
    usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _stream(request, text, row, reply, usage), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


class _Reply:
    """The OpenAI shapes of one answer: the whole completion, or its stream's chunks."""

    def __init__(self, ident: str, model: str, created: int, *, chat: bool) -> None:
        self.ident, self.model, self.created, self.chat = ident, model, created, chat

    def whole(self, result: dict[str, Any]) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": result["finish_reason"], "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": result["text"]}
        else:
            choice["text"] = result["text"]
        return {
            "id": self.ident,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": _usage(result),
            "system_fingerprint": None,
        }

    def chunk(self, piece: str | None, finish: str | None, *, role: bool = False) -> str:
        if self.chat:
            delta: dict[str, Any] = (
                {"role": "assistant", "content": ""} if role else ({"content": piece} if piece is not None else {})
            )
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}
        return self.event({"choices": [choice]})

    def event(self, fields: dict[str, Any]) -> str:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        data = {"id": self.ident, "object": kind, "created": self.created, "model": self.model, **fields}
        return f"data: {json.dumps(data)}\n\n"


async def _stream(request: Request, text: TextEngine, row: TextRow, reply: _Reply, usage: bool) -> AsyncIterator[str]:
    """The answer's server-sent events: each new piece of text as the model thread produces it, then the end."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_delta(piece: str) -> None:  # called from the model thread
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    streamed = dataclasses.replace(row, on_delta=on_delta)
    task = asyncio.ensure_future(text.complete(streamed))
    try:
        async for chunk in _chunks(request, task, queue, reply, usage):
            yield chunk
    finally:  # the client hung up (the response cancels this generator) or the stream ended
        if not task.done():
            streamed.gone.set()
            task.cancel()


async def _chunks(
    request: Request, task: asyncio.Future[dict[str, Any]], queue: asyncio.Queue[str], reply: _Reply, usage: bool
) -> AsyncIterator[str]:
    if reply.chat:
        yield reply.chunk(None, None, role=True)
    while True:
        getter = asyncio.ensure_future(queue.get())
        waits: set[asyncio.Future[Any]] = {getter, task}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            break
        yield reply.chunk(getter.result(), None)
    while not queue.empty():
        yield reply.chunk(queue.get_nowait(), None)
    try:
        result = task.result()
    except RequestError as error:
        yield f"data: {json.dumps(request_error_body(error))}\n\n"
        return
    except Exception:
        event("stream_failed", id=request.state.id)
        yield f"data: {json.dumps(error_body(500, 'The completion failed; the error is logged.'))}\n\n"
        return
    yield reply.chunk(None, result["finish_reason"])
    if usage:
        yield reply.event({"choices": [], "usage": _usage(result)})
    yield "data: [DONE]\n\n"


def _usage(result: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": result["prompt_tokens"],
        "completion_tokens": result["completion_tokens"],
        "total_tokens": result["prompt_tokens"] + result["completion_tokens"],
    }
