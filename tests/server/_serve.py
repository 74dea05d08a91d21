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

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
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
