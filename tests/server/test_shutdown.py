"""``aimod serve`` as a real process: JSON logs, and SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from aimod.server.config import hash_key
from tests.server._serve import wait_healthy

pytestmark = pytest.mark.slow

KEY = "shutdown-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_finishes_in_flight_streams_then_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f"""
[model]
name = "smollm2-135m"
[tiers]
sigma = {{ free = 1.0 }}
[[tenants]]
name = "acme"
tier = "free"
key_sha256 = "{hash_key(KEY)}"
[server]
port = {port}
"""
    )
    secret = "process-secret-0123456789"
    env = {**os.environ, "AIMOD_SECRET": secret}
    process = subprocess.Popen(
        [sys.executable, "-c", "from aimod.cli import main; main()", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, 120)
        lines: list[str] = []
        first = threading.Event()

        def stream() -> None:
            body = {
                "model": "smollm2-135m",
                "prompt": "Once upon a time",
                "max_tokens": 64,
                "stream": True,
            }
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.stream("POST", f"{base}/v1/completions", json=body, headers=headers, timeout=120) as response:
                for line in response.iter_lines():
                    if line:
                        lines.append(line)
                        first.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first.wait(60)
        process.send_signal(signal.SIGTERM)
        reader.join(120)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(1 for c in chunks if c["choices"][0]["text"]) > 10  # the stream ran to its end after SIGTERM
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"] in ("started", "stopped")] == ["started", "stopped"]
    assert any(e["event"] == "request" and e["status"] == 200 and e["tenant"] == "acme" for e in events)
    assert KEY not in stderr
    assert secret not in stderr
