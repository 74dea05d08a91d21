"""What the benchmarks that start a real `aimod serve` share (a script cannot import the tests' helpers)."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_healthy(base: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Polls ``base``/healthz until the server ``process`` answers 200; exits when it dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server at {base} did not start (exit status {process.poll()})")
        time.sleep(0.2)
