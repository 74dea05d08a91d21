"""The vision routes: ``POST /v1/classify`` and ``POST /v1/segment``, the image as base64 JSON or a multipart upload.

One route takes both encodings, so its body is read by :func:`vision_body`, a small parser with the server's
limits (FastAPI types one content type per body); its OpenAPI entry is generated from the same
:class:`~aimod.server.schemas.ClassifyRequest` / :class:`~aimod.server.schemas.SegmentRequest` models.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartParser

from aimod.errors import InvalidRequestError, RequestError, TooLargeError
from aimod.server.deps import (
    check_model,
    content_type,
    current_served,
    limited_stream,
    read_json_object,
    tenant,
    vision_engine,
)
from aimod.server.disconnect import unless_gone
from aimod.server.engines import VisionEngine
from aimod.server.schemas import ClassifyRequest, SegmentRequest, parse_model, refuse_noise_fields, refuse_unencodable
from aimod.server.served import Served
from aimod.server.tenants import Tenant
from aimod.server.vision import VisionRow, decode_base64

__all__ = ["router", "vision_body"]

router = APIRouter(prefix="/v1", tags=["vision"])

_MULTIPART_FIELDS = {"image", "top_k", "focus", "model"}
_MAX_FIELD_BYTES = 65_536
"""The largest multipart field other than the image (``focus`` as JSON, ``top_k``, ``model``)."""
MAX_JSON_SEPARATORS = 1024
"""The most ``,`` and ``:`` in a JSON vision body (its few fields and 64 focus entries need under 200): a body
of a million tiny values is refused before it is parsed."""

ServedDep = Annotated[Served, Depends(current_served)]
TenantDep = Annotated[Tenant, Depends(tenant)]
VisionBody = tuple[ClassifyRequest | SegmentRequest, bytes]


def vision_body(model: type[ClassifyRequest | SegmentRequest]) -> Callable[..., Awaitable[VisionBody]]:
    """The dependency reading a vision body: ``(the validated fields, the image's bytes)``."""

    async def read(request: Request, served: ServedDep) -> VisionBody:
        max_bytes = served.config.server.max_body_bytes
        if content_type(request, "") == "multipart/form-data":
            data, image = await _multipart(request, max_bytes)
            return parse_model(model, {**data, "image": "-"}), image
        _, data = await read_json_object(request, max_bytes, MAX_JSON_SEPARATORS)
        fields = await run_in_threadpool(parse_model, model, data)
        return fields, await run_in_threadpool(decode_base64, fields.image)

    return read


def _row(served: Served, caller: Tenant, engine: VisionEngine, body: VisionBody, kind: str) -> VisionRow:
    """The checked row (run in a worker thread, as decoding the image is the expensive part)."""
    fields, image = body
    check_model(served, fields.model)
    top_k = getattr(fields, "top_k", 5)
    if top_k > served.config.server.max_top_k:
        raise InvalidRequestError(f"`top_k` is {top_k}; at most {served.config.server.max_top_k}.", param="top_k")
    modulation = served.policy.modulation(caller, fields.focus)
    return VisionRow(engine.decode(image), modulation, kind, top_k)  # type: ignore[arg-type]


def _openapi(model: type[ClassifyRequest | SegmentRequest]) -> dict[str, Any]:
    """The route's request body in OpenAPI: the model as JSON, or its fields as a multipart form."""
    schema = model.model_json_schema()
    form = {name: dict(prop) for name, prop in schema["properties"].items()}
    form["image"] = {"type": "string", "format": "binary", "description": "The image file."}
    if "focus" in form:
        form["focus"] = {"type": "string", "description": 'JSON map class -> strength, e.g. {"Bag": 2.0}'}
    content = {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": {"type": "object", "properties": form, "required": ["image"]}},
    }
    return {"requestBody": {"required": True, "content": content}}


@router.post("/classify", openapi_extra=_openapi(ClassifyRequest))
async def classify(
    request: Request,
    served: ServedDep,
    caller: TenantDep,
    engine: Annotated[VisionEngine, Depends(vision_engine("classify"))],
    body: Annotated[VisionBody, Depends(vision_body(ClassifyRequest))],
) -> dict[str, Any]:
    """Top-k labels and probabilities of the modulated logits."""
    row = await run_in_threadpool(_row, served, caller, engine, body, "classify")
    result = await unless_gone(request, engine.answer(row))
    return {"model": served.name, "tier": caller.tier, **result}


@router.post("/segment", openapi_extra=_openapi(SegmentRequest))
async def segment(
    request: Request,
    served: ServedDep,
    caller: TenantDep,
    engine: Annotated[VisionEngine, Depends(vision_engine("segment"))],
    body: Annotated[VisionBody, Depends(vision_body(SegmentRequest))],
) -> dict[str, Any]:
    """The modulated segmentation: a PNG mask (pixel value = class id) and each class's share of pixels."""
    row = await run_in_threadpool(_row, served, caller, engine, body, "segment")
    result = await unless_gone(request, engine.answer(row))
    classes = {str(i): label for i, label in engine.id2label.items()}
    return {"model": served.name, "tier": caller.tier, "classes": classes, **result}


async def _multipart(request: Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    parser = MultiPartParser(
        request.headers, limited_stream(request, max_bytes), max_files=1, max_fields=8, max_part_size=_MAX_FIELD_BYTES
    )
    try:
        form = await parser.parse()
    except RequestError:
        raise
    except Exception as error:  # starlette raises several types for malformed multipart
        raise InvalidRequestError(f"Malformed multipart body: {error}.", code="invalid_multipart") from None
    try:
        return await _read_form(form, max_bytes)
    finally:
        await form.close()  # uploads are spooled to temporary files: release them now


async def _read_form(form: Any, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    refuse_noise_fields(dict.fromkeys(form.keys()))
    unknown = set(form.keys()) - _MULTIPART_FIELDS
    if unknown:
        raise InvalidRequestError(
            f"Unknown form field `{sorted(unknown)[0]}`; accepted: {sorted(_MULTIPART_FIELDS)}.",
            param=sorted(unknown)[0],
            code="invalid_field",
        )
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise InvalidRequestError("Send the image as a file field named `image`.", param="image")
    if upload.size is not None and upload.size > max_bytes:
        raise TooLargeError(
            f"`image` has {upload.size} bytes; at most {max_bytes}.", param="image", code="body_too_large"
        )
    data = {
        name: _form_value(name, form.get(name)) for name in ("top_k", "focus", "model") if form.get(name) is not None
    }
    return data, await upload.read()


def _form_value(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        raise InvalidRequestError(f"`{name}` must be a plain form field.", param=name)
    if name == "top_k":
        digits = value.strip()
        return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else value
    if name == "focus":
        try:
            focus = json.loads(value, parse_constant=float)
            refuse_unencodable(focus)
            return focus
        except (ValueError, RecursionError):
            raise InvalidRequestError('`focus` must be a JSON object, e.g. {"Bag": 2.0}.', param="focus") from None
    return value
