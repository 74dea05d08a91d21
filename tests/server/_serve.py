"""A real uvicorn server on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from aimod.server.config import hash_key, parse_config

SECRET = "test-secret-0123456789abcdef"
KEYS = {"premium": "key-premium-0123456789", "free": "key-free-0123456789abc", "revoked": "key-revoked-0123456789"}


def config(model: str, sigma: dict[str, float], *, focus: dict[str, Any] | None = None, **server: Any) -> Any:
    """A checked ServerConfig with tenants alice (premium), bob (free) and mallory (free, revoked)."""
    return parse_config(
        {
            "model": {"name": model},
            "tiers": {"sigma": sigma},
            "focus": focus or {"allowed": [], "max_sigma": 0.0},
            "tenants": [
                {"name": "alice", "tier": "premium", "key_sha256": hash_key(KEYS["premium"])},
                {"name": "bob", "tier": "free", "key_sha256": hash_key(KEYS["free"])},
                {"name": "mallory", "tier": "free", "key_sha256": hash_key(KEYS["revoked"]), "revoked": True},
            ],
            "server": server,
        }
    )


def auth(tier: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tier]}"}


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serves ``app`` on 127.0.0.1 (a free port) until the block ends; yields the base URL."""
    import uvicorn

    from aimod.server.listen import uvicorn_config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, app.state.served.config.server))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_healthy(base: str, process: subprocess.Popen[str], timeout: float) -> None:
    """Polls ``base``/healthz of a server ``process`` until it answers 200.

    Fails with the process's output when it exits first, and when ``timeout`` seconds pass.
    """
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the server exited with {process.returncode}:\n{out}\n{err or ''}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the server at {base} was not healthy after {timeout:g} s"
        time.sleep(0.2)


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FakeTextEngine:
    """A text engine without a model: one token per character, the prompt echoed back (the engine seam)."""

    def __init__(self) -> None:
        from aimod.server.batching import BatchStats

        self.stats = BatchStats()

    def start(self) -> None: ...

    async def stop(self, timeout_s: float | None = None) -> Any:
        from aimod.server.batching import ShutdownSummary

        return ShutdownSummary(answered=0, dropped=0, cut=0, seconds=0.0, on_time=True)

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return [ord(c) for m in messages for c in m["content"]]

    def prompt_ids(self, prompt: str) -> list[int]:
        return [ord(c) for c in prompt]

    def check_length(self, ids: list[int], max_tokens: int, param: str) -> None: ...

    def token_modulation(self, modulation: object) -> object:
        return modulation

    async def complete(self, row: Any) -> dict[str, Any]:
        return {
            "text": "".join(map(chr, row.ids)),
            "prompt_tokens": len(row.ids),
            "completion_tokens": 1,
            "finish_reason": "length",
        }


def fake_text_app(engine: Any = None, **server: Any) -> Any:
    """The text routes over ``engine`` (default :class:`FakeTextEngine`; tenants as :func:`config`, tiers premium 0
    and free 3)."""
    from aimod.server import create_app
    from aimod.server.config import FocusConfig
    from aimod.server.policy import FocusPolicy
    from aimod.server.served import Served
    from aimod.server.tenants import Tenants

    cfg = config("fake-lm", {"premium": 0.0, "free": 3.0}, **server)
    tiers = {"premium": 0.0, "free": 3.0}
    policy = FocusPolicy(FocusConfig(), id2label=None)
    served = Served(
        cfg, "fake-lm", "text", tiers, None, Tenants(cfg.tenants, tiers), policy, text=engine or FakeTextEngine()
    )
    return create_app(served)
