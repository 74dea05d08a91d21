"""Issue 15's findings, one test each: strict fields, refusals wherever they appear, bounded bodies, images.

The text routes run over the fake engine (one token per character); the vision routes over the real
resnet-fashion. Connection limits and timeouts are in ``test_listen.py``; shutdown in ``test_shutdown.py``.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aimod.catalog import load
from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.server import build, create_app
from tests.server._serve import SECRET, auth, b64, config, fake_text_app, png

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def text() -> Iterator[TestClient]:
    with TestClient(fake_text_app(max_prompt_chars=1000, max_text_body_bytes=64_000)) as client:
        yield client


@pytest.fixture(scope="module")
def fashion() -> object:
    return load("resnet-fashion")


@pytest.fixture(scope="module")
def vision(fashion: object) -> Iterator[TestClient]:
    cfg = config("resnet-fashion", {"premium": 0.0, "free": 3.0}, focus={"allowed": ["Bag"], "max_sigma": 4.0})
    with TestClient(create_app(build(cfg, SECRET, loaded=fashion))) as client:
        yield client


def chat(client: TestClient, path: str = CHAT, content: bytes | None = None, **fields: Any) -> Any:
    body = {"model": "fake-lm", "messages": [{"role": "user", "content": "hi"}], **fields}
    if content is not None:
        return client.post(path, content=content, headers={"Content-Type": "application/json", **auth("free")})
    return client.post(path, json=body, headers=auth("free"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("focus", {"Paris": True}), ("focus", {"Paris": "4"}), ("max_tokens", True), ("max_tokens", "5")],
)
def test_text_fields_are_not_coerced(text: TestClient, field: str, value: object) -> None:
    response = chat(text, **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_field"
    assert response.json()["error"]["param"].startswith(field)


@pytest.mark.parametrize(("field", "value"), [("top_k", True), ("top_k", "5"), ("focus", {"Bag": "4"})])
def test_vision_fields_are_not_coerced(vision: TestClient, field: str, value: object) -> None:
    image = b64(png(np.zeros((28, 28), np.uint8)))
    response = vision.post("/v1/classify", json={"image": image, field: value}, headers=auth("free"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(field)


@pytest.mark.parametrize("query", ["sigma=0", "Sigma=0", "SIGMA=0", "tier=premium", "Noise_Key=x"])
def test_noise_fields_in_the_query_are_refused_in_any_case(text: TestClient, query: str) -> None:
    response = chat(text, path=f"{CHAT}?{query}")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "tier_not_allowed"


def test_other_query_parameters_are_refused_not_ignored(text: TestClient) -> None:
    response = chat(text, path=f"{CHAT}?colour=red")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "colour"


@pytest.mark.parametrize(
    "fields",
    [
        {"stream": True, "stream_options": {"sigma": 0}},
        {"stream": True, "stream_options": {"include_usage": True, "Tier": "premium"}},
        {"messages": [{"role": "user", "content": "hi", "sigma": 0}]},
        {"metadata": {"nested": [{"SIGMA": 0}]}},
    ],
)
def test_noise_fields_nested_anywhere_are_refused(text: TestClient, fields: dict[str, Any]) -> None:
    response = chat(text, **fields)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "tier_not_allowed"


def test_a_focus_word_named_like_a_noise_field_is_only_a_word(text: TestClient) -> None:
    response = chat(text, focus={"sigma": 0.0})
    # the fake server's policy allows no focus: refused as a focus word, not as a noise field
    assert response.json()["error"]["code"] == "focus_not_allowed", response.text


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": "fake-lm", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        b'{"model": "fake-lm", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
        b'{"model": "fake-lm", "messages": [{"role": "user", "content": "hi"}], "focus": {"\\ud800": 1}}',
    ],
    ids=["chat", "content part", "focus"],
)
def test_lone_surrogates_are_refused_with_400(text: TestClient, content: bytes) -> None:
    response = chat(text, content=content)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_text"


def test_a_lone_surrogate_in_a_completions_prompt_is_refused(text: TestClient) -> None:
    response = chat(text, path="/v1/completions", content=b'{"model": "fake-lm", "prompt": "\\ud83d"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_text"


def test_surrogate_pairs_are_ordinary_text(text: TestClient) -> None:
    response = chat(text, path="/v1/completions", content=b'{"model": "fake-lm", "prompt": "\\ud83d\\ude00"}')
    assert response.status_code == 200, response.text


def test_prompts_over_max_prompt_chars_are_refused_before_tokenising(text: TestClient) -> None:
    response = chat(text, messages=[{"role": "user", "content": "x" * 600}, {"role": "user", "content": "y" * 600}])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert "1000" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "focus", [{f"w{i}": 1.0 for i in range(65)}, {"x" * 129: 1.0}], ids=["65 entries", "129 characters"]
)
def test_focus_is_bounded_in_entries_and_length(text: TestClient, focus: dict[str, float]) -> None:
    response = chat(text, focus=focus)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith("focus")


def test_json_with_nan_is_refused(text: TestClient) -> None:
    content = b'{"model": "fake-lm", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    response = chat(text, content=content)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def post_chunks(
    client: TestClient, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, Any, int]:
    """POSTs a body in chunks without a Content-Length, straight to the ASGI app of a started client.

    Returns ``(status, JSON answer, how many chunks the server pulled)``. The test client itself reads a whole
    body before sending it, so it cannot show where a server stops reading.
    """
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {**headers, "Transfer-Encoding": "chunked"}.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": dict(client.app_state),
    }

    async def call() -> None:
        await client.app(scope, receive, send)

    client.portal.call(call)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def chunks(head: bytes, filler: bytes, count: int, tail: bytes = b"") -> Iterator[bytes]:
    yield head
    for _ in range(count):
        yield filler
    yield tail


def test_a_chunked_json_body_is_cut_at_the_limit(text: TestClient) -> None:
    body = chunks(b'{"model": "fake-lm", "prompt": "', b"x" * 16_000, 100, b'"}')  # 1.6 MB if read whole
    headers = {"Content-Type": "application/json", **auth("free")}
    status, answer, pulled = post_chunks(text, "/v1/completions", headers, body)
    assert status == 413, answer
    assert answer["error"]["code"] == "body_too_large"
    assert pulled <= 6  # 64 kB limit: the head and four 16 kB chunks fit, the fifth is over it


def test_a_chunked_multipart_upload_is_cut_at_the_limit(fashion: object) -> None:
    cfg = config("resnet-fashion", {"premium": 0.0, "free": 3.0}, max_body_bytes=200_000)
    boundary = "aimod-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = chunks(head, b"\0" * 65_536, 1600, f"\r\n--{boundary}--\r\n".encode())  # 100 MiB if read whole
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **auth("free")}
    with TestClient(create_app(build(cfg, SECRET, loaded=fashion))) as client:
        status, answer, pulled = post_chunks(client, "/v1/classify", headers, body)
    assert status == 413, answer
    assert pulled <= 5  # 200 kB: the head and three 64 kB chunks fit, the fourth is over it


def test_sixteen_bit_grey_images_are_scaled_not_clipped(vision: TestClient) -> None:
    pixels, _ = load_fashion_mnist("test")
    for index in range(6):
        eight = pixels[index].numpy().astype(np.uint8)
        sixteen = eight.astype(np.uint16) * 257  # the same picture at 16 bits: 255 -> 65535
        answers = [
            vision.post("/v1/classify", json={"image": b64(png(image))}, headers=auth("premium")).json()
            for image in (eight, sixteen)
        ]
        assert answers[1]["labels"][0]["label"] == answers[0]["labels"][0]["label"]
        assert answers[1]["labels"][0]["probability"] == pytest.approx(answers[0]["labels"][0]["probability"], abs=1e-6)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels (and whose data is one empty row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000], ids=["past the warning", "past the error"])
def test_decompression_bombs_get_the_documented_413(vision: TestClient, side: int) -> None:
    response = vision.post("/v1/classify", json={"image": b64(_png_header_claiming(side, side))}, headers=auth("free"))
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "image_too_large"


def test_405_names_the_allowed_methods(text: TestClient) -> None:
    response = text.get(CHAT, headers=auth("free"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "POST" in response.json()["error"]["message"]


def test_openapi_documents_the_bearer_scheme_the_errors_and_the_model(text: TestClient) -> None:
    spec = text.get("/openapi.json").json()
    assert {"type": "http", "scheme": "bearer"}.items() <= next(
        iter(spec["components"]["securitySchemes"].values())
    ).items()
    chat_post = spec["paths"][CHAT]["post"]
    assert chat_post["security"]
    assert {"400", "401", "403", "404", "413", "415", "503"} <= set(chat_post["responses"])
    assert chat_post["responses"]["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    model = spec["components"]["schemas"]["ChatRequest"]["properties"]["model"]
    assert model["enum"] == ["fake-lm"]


def test_bad_requests_leave_the_server_serving(text: TestClient) -> None:
    assert chat(text, content=b'{"model": "fake-lm", "prompt": "\\ud800"}').status_code == 400
    assert chat(text).status_code == 200


def record_loop(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[bool]:
    """Replaces ``owner.name`` by a wrapper recording, per call, whether it ran on the event loop's thread."""
    import asyncio

    on_loop: list[bool] = []
    method = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_loop.append(False)
        return method(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return on_loop


def test_images_are_decoded_off_the_event_loop(vision: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from aimod.server.vision import VisionService

    on_loop = record_loop(monkeypatch, VisionService, "decode")
    image = io.BytesIO(png(np.zeros((28, 28), np.uint8))).getvalue()
    response = vision.post("/v1/classify", json={"image": b64(image)}, headers=auth("free"))
    assert response.status_code == 200, response.text
    assert on_loop == [False]


def test_prompts_are_tokenised_and_parsed_off_the_event_loop(text: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import aimod.server.deps as deps
    from tests.server._serve import FakeTextEngine

    tokenised = record_loop(monkeypatch, FakeTextEngine, "chat_ids")
    parsed = record_loop(monkeypatch, deps, "parse_json_object")
    assert chat(text).status_code == 200
    assert tokenised == [False]
    assert parsed == [False]


def test_a_client_that_hangs_up_is_logged_once_at_info() -> None:
    import logging
    import socket
    import time

    from tests.server._serve import running

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    loggers = [logging.getLogger(name) for name in ("aimod.server", "uvicorn.error")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(keep)
        log.setLevel(logging.INFO)
    try:
        with running(fake_text_app()) as base:
            host, port = base.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as sock:
                head = (
                    "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Authorization: {auth('free')['Authorization']}\r\nContent-Length: 1000\r\n\r\n"
                )
                sock.sendall(head.encode() + b'{"model": ')  # then hangs up, 990 bytes short
                time.sleep(0.3)
            deadline = time.monotonic() + 10
            while not any(r.getMessage() == "request" for r in records) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.removeHandler(keep)
            log.setLevel(level)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
    lines = [getattr(r, "fields", {}) for r in records if r.getMessage() == "request"]
    assert [(line["status"], line["error"]) for line in lines] == [(499, "client_gone")]


def test_a_vision_body_of_a_million_tiny_values_is_refused_before_it_is_parsed(
    vision: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aimod.server.deps as deps

    parsed = record_loop(monkeypatch, deps, "parse_json_object")
    image = b64(png(np.zeros((28, 28), np.uint8)))
    many = json.dumps({"image": image, "focus": {f"k{i}": 1.0 for i in range(100_000)}}).encode()
    response = vision.post("/v1/classify", content=many, headers={"Content-Type": "application/json", **auth("free")})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "too_many_values"
    assert parsed == []  # (parsing a million such values holds the interpreter for a second)
    data_url = json.dumps({"image": "data:image/png;base64," + image, "focus": {"Bag": 1.0}, "top_k": 3})
    ordinary = vision.post(
        "/v1/classify", content=data_url, headers={"Content-Type": "application/json", **auth("free")}
    )
    assert ordinary.status_code != 400 or ordinary.json()["error"]["code"] != "too_many_values"
