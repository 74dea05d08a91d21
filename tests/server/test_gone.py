"""A client that hangs up: its row is given up (dropped if queued, ended at the next step if running)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aimod import Modulation
from aimod.catalog import Model, load
from aimod.noise import SeededNoise
from aimod.server.text import TextRow, TextService
from tests.server._serve import FakeTextEngine, auth, fake_text_app, running


class HangingEngine(FakeTextEngine):
    """Streams one piece, then never finishes: what happened to each row is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[TextRow] = []
        self.cancelled = threading.Event()

    async def complete(self, row: Any) -> dict[str, Any]:
        self.rows.append(row)
        if row.on_delta is not None:
            row.on_delta("Once")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
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
    yield records
    for log, level in zip(loggers, levels, strict=True):
        log.removeHandler(keep)
        log.setLevel(level)


@pytest.mark.parametrize("stream", [False, True])
def test_a_hang_up_while_waiting_cancels_the_row(server_log: list[logging.LogRecord], stream: bool) -> None:
    engine = HangingEngine()
    with running(fake_text_app(engine)) as base:
        host, port = base.removeprefix("http://").split(":")
        body = json.dumps({"model": "fake-lm", "prompt": "Once upon a time", "stream": stream}).encode()
        head = (
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth('free')['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head.encode() + body)
            deadline = time.monotonic() + 10
            while not engine.rows and time.monotonic() < deadline:
                time.sleep(0.01)
            if stream:
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert engine.cancelled.wait(10), "the engine's work went on after the client hung up"
        assert engine.rows[0].gone.is_set()
        deadline = time.monotonic() + 10
        while not any(r.getMessage() == "request" for r in server_log) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [r.getMessage() for r in server_log if r.levelno >= logging.WARNING] == []
    if not stream:  # (a stream's status, 200, was sent before the hang-up)
        lines = [getattr(r, "fields", {}) for r in server_log if r.getMessage() == "request"]
        assert [(line["status"], line["error"]) for line in lines] == [(499, "client_gone")]


@pytest.fixture(scope="module")
def smollm2() -> Model:
    return load("smollm2-135m")


@pytest.mark.slow
def test_generation_ends_a_row_whose_client_has_gone_and_every_row_at_abort(smollm2: Model) -> None:
    service = TextService(smollm2.model, smollm2.tokenizer, SeededNoise(0))
    ids = service.prompt_ids("Once upon a time")
    alone = service.run([TextRow(ids, Modulation(), 24)])[0]

    leaving = TextRow(ids, Modulation(), 24, on_delta=lambda piece: leaving.gone.set())
    staying = TextRow(ids, Modulation(), 24)
    left, stayed = service.run([leaving, staying])
    assert left["finish_reason"] == "cancelled"
    assert left["completion_tokens"] <= 3
    assert stayed == alone  # the other row of the batch is untouched

    abort = threading.Event()
    abort.set()
    cut = service.run([TextRow(ids, Modulation(), 24), TextRow(ids, Modulation(), 24)], abort)
    assert [r["finish_reason"] for r in cut] == ["cancelled", "cancelled"]
    assert all(r["completion_tokens"] <= 1 for r in cut)
