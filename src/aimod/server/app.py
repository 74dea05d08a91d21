"""The FastAPI application: routes, authentication, batching, streaming, logs.

Routes (see ``/docs`` on a running server, or docs/server.md):

* ``GET /healthz``: liveness and batching counters (no key needed).
* ``GET /v1/models``: the served model, the caller's tier and the focus policy.
* ``POST /v1/chat/completions``, ``POST /v1/completions``: OpenAI-compatible, streaming or not (language models).
* ``POST /v1/classify``, ``POST /v1/segment``: vision models; the image as base64 JSON or a multipart upload.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from aimod import __version__
from aimod.server.batching import Batcher
from aimod.server.errors import ApiError, error_body, install_handlers
from aimod.server.logs import event
from aimod.server.schemas import (
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    SegmentRequest,
    parse_body,
    parse_model,
    refuse_noise_fields,
)
from aimod.server.served import Served
from aimod.server.tenants import Tenant
from aimod.server.text import TextRow
from aimod.server.vision import VisionRow, decode_base64

__all__ = ["create_app"]

_MULTIPART_FIELDS = {"image", "top_k", "focus", "model"}


def create_app(served: Served) -> FastAPI:
    """The application for one served model.

    Example:
        >>> # uvicorn.run(create_app(build(load_config("server.toml"), secret)), host="127.0.0.1", port=8000)
    """
    settings = served.config.server
    run: Callable[[Any], Any] = served.vision.run if served.vision is not None else served.text.run  # type: ignore[union-attr]
    batcher: Batcher[Any, Any] = Batcher(run, max_batch=settings.max_batch, wait_s=settings.batch_wait_ms / 1000)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        event(
            "started",
            model=served.name,
            task=served.kind,
            tiers=sorted(served.tiers),
            tenants=len(served.config.tenants),
        )
        yield
        await batcher.stop()
        event("stopped", batches=batcher.stats.batches, rows=batcher.stats.rows)

    app = FastAPI(
        title="aimod server",
        version=__version__,
        description="One model, many tenants: owner-set utility tiers, user-chosen focus, keyed noise.",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.state.served = served
    app.state.batcher = batcher

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.id = uuid.uuid4().hex[:16]
        request.state.tenant = None
        request.state.error = None
        begin = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            event("request_failed", id=request.state.id, path=request.url.path)
            raise
        tenant: Tenant | None = request.state.tenant
        event(
            "request",
            id=request.state.id,
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round(1000 * (time.perf_counter() - begin), 2),
            tenant=tenant.name if tenant else None,
            tier=tenant.tier if tenant else None,
            error=request.state.error,
        )
        response.headers["x-request-id"] = request.state.id
        return response

    def authenticate(request: Request) -> Tenant:
        tenant = served.tenants.authenticate(request.headers.get("authorization"))
        refuse_noise_fields(dict(request.query_params))  # ?sigma=0 is refused too, never silently ignored
        request.state.tenant = tenant
        return tenant

    def check_model(name: str | None) -> None:
        if name is not None and name != served.name:
            raise ApiError(
                404,
                f"The model {name!r} does not exist here; this server runs {served.name!r}.",
                param="model",
                code="model_not_found",
            )

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the model and the batching counters."""
        stats = batcher.stats
        return {
            "status": "ok",
            "model": served.name,
            "task": served.kind,
            "uptime_s": round(time.time() - started, 1),
            "batches": stats.batches,
            "rows": stats.rows,
            "largest_batch": stats.largest,
        }

    @app.get("/v1/models", tags=["openai"])
    async def models(request: Request) -> dict[str, Any]:
        """The served model, with the caller's tier and the focus policy."""
        tenant = authenticate(request)
        entry = {
            "id": served.name,
            "object": "model",
            "created": int(started),
            "owned_by": "aimod",
            "aimod": {**served.describe(), "tier": tenant.tier},
        }
        return {"object": "list", "data": [entry]}

    # -- language models ---------------------------------------------------------------------------------

    def text_service() -> Any:
        if served.text is None:
            raise ApiError(
                404,
                f"This server runs the {served.kind} model {served.name!r}; use /v1/classify or /v1/segment.",
                code="wrong_model_kind",
            )
        return served.text

    def max_tokens(requested: int | None) -> int:
        value = requested or settings.default_max_tokens
        if value > settings.max_new_tokens:
            raise ApiError(
                400,
                f"`max_tokens` is {value}; this server allows at most {settings.max_new_tokens}.",
                param="max_tokens",
            )
        return value

    @app.post("/v1/chat/completions", tags=["openai"], openapi_extra=_json_body("ChatRequest"))
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions under the caller's tier; ``focus`` is an extra body field."""
        tenant = authenticate(request)
        text = text_service()
        body = await parse_body(request, ChatRequest, settings.max_body_bytes)
        check_model(body.model)
        limit = max_tokens(body.max_completion_tokens or body.max_tokens)
        messages = [_message(i, m.role, m.content) for i, m in enumerate(body.messages)]
        if not any(m["content"].strip() for m in messages):
            raise ApiError(400, "Every message is empty; send some text.", param="messages", code="empty_prompt")
        return await _generation(request, tenant, body, text.chat_ids(messages), limit, "messages", chat=True)

    @app.post("/v1/completions", tags=["openai"], openapi_extra=_json_body("CompletionRequest"))
    async def completions(request: Request) -> Response:
        """OpenAI (legacy) completions under the caller's tier; ``focus`` is an extra body field."""
        tenant = authenticate(request)
        text = text_service()
        body = await parse_body(request, CompletionRequest, settings.max_body_bytes)
        check_model(body.model)
        limit = max_tokens(body.max_tokens)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise ApiError(
                400, f"`prompt` must be one string (got {len(prompts)}); send one request per prompt.", param="prompt"
            )
        if not prompts[0].strip():
            raise ApiError(400, "`prompt` is empty.", param="prompt", code="empty_prompt")
        return await _generation(request, tenant, body, text.prompt_ids(prompts[0]), limit, "prompt", chat=False)

    async def _generation(
        request: Request,
        tenant: Tenant,
        body: ChatRequest | CompletionRequest,
        ids: list[int],
        limit: int,
        param: str,
        *,
        chat: bool,
    ) -> Response:
        """The part both OpenAI routes share: length check, the row's modulation, the (streamed) answer."""
        text = text_service()
        text.check_length(ids, limit, param)
        modulation = text.token_modulation(served.policy.modulation(tenant, body.focus))
        row = TextRow(ids, modulation, limit, body.stops())
        usage = bool((body.stream_options or {}).get("include_usage"))
        return await _complete(request, row, body.stream, usage, chat=chat)

    async def _complete(request: Request, row: TextRow, stream: bool, usage: bool, *, chat: bool) -> Response:
        ident = ("chatcmpl-" if chat else "cmpl-") + request.state.id
        created = int(time.time())
        if not stream:
            result = await batcher.submit(row)
            choice: dict[str, Any] = {"index": 0, "finish_reason": result["finish_reason"], "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": result["text"]}
            else:
                choice["text"] = result["text"]
            return JSONResponse(
                {
                    "id": ident,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": created,
                    "model": served.name,
                    "choices": [choice],
                    "usage": _usage(result),
                    "system_fingerprint": None,
                }
            )
        queue: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        streamed = TextRow(
            row.ids,
            row.modulation,
            row.max_tokens,
            row.stop,
            on_delta=lambda piece: _call_soon(loop, queue.put_nowait, piece),
        )
        task = asyncio.ensure_future(batcher.submit(streamed))
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish: str | None, role: bool = False) -> str:
            if chat:
                delta: dict[str, Any] = (
                    {"role": "assistant", "content": ""} if role else ({"content": piece} if piece is not None else {})
                )
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}
            data = {"id": ident, "object": kind, "created": created, "model": served.name, "choices": [choice]}
            return f"data: {json.dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            if chat:
                yield chunk(None, None, role=True)
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield chunk(getter.result(), None)
                    continue
                getter.cancel()
                break
            while not queue.empty():
                yield chunk(queue.get_nowait(), None)
            try:
                result = task.result()
            except ApiError as error:
                yield f"data: {json.dumps(error_body(error.status, error.message, error.param, error.code))}\n\n"
                return
            except Exception:
                event("stream_failed", id=request.state.id)
                yield f"data: {json.dumps(error_body(500, 'The completion failed; the error is logged.'))}\n\n"
                return
            yield chunk(None, result["finish_reason"])
            if usage:
                data = {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": served.name,
                    "choices": [],
                    "usage": _usage(result),
                }
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    # -- vision ------------------------------------------------------------------------------------------

    async def vision_request(request: Request, kind: str) -> tuple[Tenant, VisionRow]:
        tenant = authenticate(request)
        if served.vision is None:
            raise ApiError(
                404,
                f"This server runs the language model {served.name!r}; use /v1/chat/completions.",
                code="wrong_model_kind",
            )
        if kind == "segment" and served.kind != "segmentation":
            raise ApiError(404, f"{served.name!r} is a classifier; use /v1/classify.", code="wrong_model_kind")
        if kind == "classify" and served.kind != "classification":
            raise ApiError(404, f"{served.name!r} is a segmenter; use /v1/segment.", code="wrong_model_kind")
        model_cls: type[ClassifyRequest | SegmentRequest] = ClassifyRequest if kind == "classify" else SegmentRequest
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body: ClassifyRequest | SegmentRequest
        if content_type == "multipart/form-data":
            data, image = await _multipart(request, settings.max_body_bytes)
            body = parse_model(model_cls, {**data, "image": "-"})
        else:
            body = await parse_body(request, model_cls, settings.max_body_bytes)
            image = decode_base64(body.image)
        check_model(body.model)
        top_k = getattr(body, "top_k", 5)
        if top_k > settings.max_top_k:
            raise ApiError(400, f"`top_k` is {top_k}; at most {settings.max_top_k}.", param="top_k")
        pixels = served.vision.decode(image)
        row = VisionRow(pixels, served.policy.modulation(tenant, body.focus), kind, top_k)  # type: ignore[arg-type]
        return tenant, row

    @app.post("/v1/classify", tags=["vision"], openapi_extra=_vision_body("ClassifyRequest", top_k=True))
    async def classify(request: Request) -> dict[str, Any]:
        """Top-k labels and probabilities of the modulated logits."""
        tenant, row = await vision_request(request, "classify")
        result = await batcher.submit(row)
        return {"model": served.name, "tier": tenant.tier, **result}

    @app.post("/v1/segment", tags=["vision"], openapi_extra=_vision_body("SegmentRequest", top_k=False))
    async def segment(request: Request) -> dict[str, Any]:
        """The modulated segmentation: a PNG mask (pixel value = class id) and each class's share of pixels."""
        tenant, row = await vision_request(request, "segment")
        result = await batcher.submit(row)
        classes = {str(i): label for i, label in served.vision.loaded.id2label.items()}  # type: ignore[union-attr]
        return {"model": served.name, "tier": tenant.tier, "classes": classes, **result}

    _install_openapi(app)
    return app


def _message(index: int, role: str, content: str | list[dict[str, Any]]) -> dict[str, str]:
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400, f"messages[{index}].content: only text parts are supported.", param=f"messages.{index}.content"
            )
        parts.append(part["text"])
    return {"role": role, "content": "".join(parts)}


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[str], None], piece: str) -> None:
    loop.call_soon_threadsafe(callback, piece)


def _usage(result: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": result["prompt_tokens"],
        "completion_tokens": result["completion_tokens"],
        "total_tokens": result["prompt_tokens"] + result["completion_tokens"],
    }


async def _multipart(request: Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"The body has {declared} bytes; at most {max_bytes}.", code="body_too_large")
    try:
        form_context = request.form(max_files=1, max_fields=8, max_part_size=max_bytes)
        form = await form_context
    except Exception as error:  # starlette raises several types for malformed multipart
        raise ApiError(400, f"Malformed multipart body: {error}.", code="invalid_multipart") from None
    try:
        return await _read_form(form, max_bytes)
    finally:
        await form.close()  # uploads are spooled to temporary files: release them now


async def _read_form(form: Any, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    refuse_noise_fields(dict.fromkeys(form.keys()))
    unknown = set(form.keys()) - _MULTIPART_FIELDS
    if unknown:
        raise ApiError(
            400,
            f"Unknown form field `{sorted(unknown)[0]}`; accepted: {sorted(_MULTIPART_FIELDS)}.",
            param=sorted(unknown)[0],
            code="invalid_field",
        )
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "Send the image as a file field named `image`.", param="image")
    if upload.size is not None and upload.size > max_bytes:
        raise ApiError(
            413, f"`image` has {upload.size} bytes; at most {max_bytes}.", param="image", code="body_too_large"
        )
    image = await upload.read()
    data: dict[str, Any] = {}
    for name in ("top_k", "focus", "model"):
        value = form.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"`{name}` must be a plain form field.", param=name)
        if name == "top_k":
            digits = value.strip()
            data[name] = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else value
        elif name == "focus":
            try:
                data[name] = json.loads(value)
            except (ValueError, RecursionError):
                raise ApiError(400, '`focus` must be a JSON object, e.g. {"Bag": 2.0}.', param="focus") from None
        else:
            data[name] = value
    return data, image


def _json_body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _vision_body(schema: str, *, top_k: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "image": {"type": "string", "format": "binary", "description": "The image file."},
        "focus": {"type": "string", "description": 'JSON map class -> strength, e.g. {"Bag": 2.0}'},
        "model": {"type": "string"},
    }
    if top_k:
        properties["top_k"] = {"type": "integer", "minimum": 1, "default": 5}
    body = _json_body(schema)
    body["requestBody"]["content"]["multipart/form-data"] = {
        "schema": {"type": "object", "properties": properties, "required": ["image"]}
    }
    return body


def _install_openapi(app: FastAPI) -> None:
    from pydantic.json_schema import models_json_schema

    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            models: list[type[BaseModel]] = [ChatRequest, CompletionRequest, ClassifyRequest, SegmentRequest]
            _, top = models_json_schema(
                [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(top.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
