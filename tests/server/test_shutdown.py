"""``aimod serve`` as a real process: JSON logs; SIGTERM lets in-flight requests finish, within a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aimod.server.config import hash_key
from tests.server._serve import wait_healthy

pytestmark = pytest.mark.slow

KEY = "shutdown-test-key-0123456789"
SECRET = "process-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(tmp_path: Path, server: str = "") -> tuple[subprocess.Popen[str], str]:
    """``aimod serve`` of SmolLM2 with one tenant, ``server`` added to its ``[server]`` table."""
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
{server}
"""
    )
    env = {**os.environ, "AIMOD_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-c", "from aimod.cli import main; main()", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def test_sigterm_finishes_in_flight_streams_then_exits_cleanly(tmp_path: Path) -> None:
    process, base = start(tmp_path)
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
    assert process.returncode == 0  # every accepted request answered
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"] in ("started", "stopped")] == ["started", "stopped"]
    assert any(e["event"] == "request" and e["status"] == 200 and e["tenant"] == "acme" for e in events)
    assert KEY not in stderr
    assert SECRET not in stderr


def test_sigterm_cuts_the_queue_at_the_deadline_and_says_so(tmp_path: Path) -> None:
    process, base = start(tmp_path, "graceful_timeout_s = 3\nmax_batch = 2\nmax_new_tokens = 512")
    body = {"model": "smollm2-135m", "prompt": "Once upon a time", "max_tokens": 512}
    headers = {"Authorization": f"Bearer {KEY}"}
    answers: list[httpx.Response] = []
    try:
        wait_healthy(base, process, 120)

        def ask() -> None:
            answers.append(httpx.post(f"{base}/v1/completions", json=body, headers=headers, timeout=120))

        askers = [threading.Thread(target=ask) for _ in range(6)]  # 3 batches of 512 tokens: far past 3 s
        for asker in askers:
            asker.start()
        time.sleep(1.5)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        stopped_after = time.monotonic() - signalled
        for asker in askers:
            asker.join(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 4  # EXIT_CUT
    assert stopped_after < 10  # graceful_timeout_s 3 and the exit (without the deadline: 3 x 512 tokens, ~1 min)
    assert len(answers) == 6
    assert [a.status_code for a in answers] == [503] * 6  # no generation of 512 tokens fits before the deadline
    assert {a.json()["error"]["code"] for a in answers} == {"shutting_down"}
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    stopped = [e for e in events if e["event"] == "stopped"]
    assert len(stopped) == 1
    assert stopped[0]["cut"] == 6
    assert stopped[0]["on_time"] is False
    assert stopped[0]["seconds"] < 5  # the engine deadline is 1.5 s
