"""Issue 15's abuse cases against real `aimod serve` processes on loopback, each while a canary tenant is served.

Starts two servers (resnet-fashion for /v1/classify, smollm2-135m for the text endpoints) as subprocesses on
free loopback ports, with small connection timeouts in ``[server]`` (keep_alive_s 2, header_timeout_s 3,
body_timeout_s 5, graceful_timeout_s 5) and a connection cap above what the benchmark opens. A canary thread,
on its own client, sends ordinary requests to the server under attack (a small classify at the free tier, or a
4-token completion); its median latency on the idle server is measured first, then its worst latency during
each case. Each case is one finding of the issue:

 1. 15 MB completions / chat prompts            -> 413
 2. 64 focus words of 100k characters            -> 4xx
 3. 13 MB body with 1,000,000 focus keys         -> 4xx
 4. a prompt over max_prompt_chars, under the body limit -> 400 context_length_exceeded
 5. a chunked 100 MB multipart upload, no Content-Length -> 413 (bytes sent before the server answered)
 6. 300 idle sockets, 100 slow bodies, 1,500 header tricklers -> closed by the server within its timeouts
 7. a lone surrogate in a prompt, a chat message, a focus word -> 400
 8. 16-bit grey PNGs at the premium tier       -> the 8-bit original's label, every time
 9. lax fields (focus true / "4", top_k true / "5"), ?Sigma=0, stream_options.sigma -> 400 / 403
10. 405 responses                               -> carry Allow
11. images past Pillow's decompression-bomb limit (and past max_image_pixels) -> 413
12. clients that hang up mid-request            -> no warning- or error-level line in the server's JSON log
13. SIGTERM with long completions in flight     -> time to exit and exit status (measured, not judged)

Printed: one line per case (statuses, the slowest time to refuse, the canary's worst latency, worst/idle, and
whether the case met its goal), the server's open descriptors (/proc/<pid>/fd) at baseline, peak and after,
and a summary of the goals: every case 4xx or served, canary worst/idle <= 2x, descriptors back to baseline.
Loopback only, no hub downloads (HF_HUB_OFFLINE=1); both servers are stopped at the end.

Run: PYTHONPATH=src:. python benchmarks/bench_abuse.py [--quick]    (about 100 s on 2 CPU cores; --quick: fewer
sockets and images, about 85 s). ``--text-engine vllm`` serves the text model on vLLM (``[engine] kind = "vllm"``;
run it with .venv-vllm/bin/python).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import multiprocessing
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from _server import wait_healthy
from aimod.server.config import hash_key

KEYS = {"premium": "abuse-premium-key-0123456789", "free": "abuse-free-key-0123456789", "canary": "abuse-canary-0123"}
SECRET = "bench-abuse-secret-0123456789"
TEXT_MODEL = "smollm2-135m"
TIMEOUTS = {"keep_alive_s": 2.0, "header_timeout_s": 3.0, "body_timeout_s": 5.0, "graceful_timeout_s": 5.0}


def auth(tier: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tier]}"}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One `aimod serve` subprocess, its port and its stderr (the JSON log) in a file."""

    model: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"level": "unparsed", "event": raw[:200]})
        return lines


def start_server(model: str, folder: Path, max_connections: int, engine: str = "hf") -> Server:
    port = free_port()
    config = folder / f"{model}.toml"
    sigma_free = 2.0 if model == TEXT_MODEL else 6.2266
    extras = "\n".join(f"{name} = {value}" for name, value in TIMEOUTS.items())
    tenants = "".join(
        f'[[tenants]]\nname = "{name}"\ntier = "{"premium" if name == "premium" else "free"}"\n'
        f'key_sha256 = "{hash_key(key)}"\n'
        for name, key in KEYS.items()
    )
    config.write_text(
        f'[model]\nname = "{model}"\n[tiers]\nsigma = {{ premium = 0.0, free = {sigma_free} }}\n'
        f'[focus]\nallowed = ["*"]\nmax_sigma = 4.0\n{tenants}'
        f"[server]\nport = {port}\nmax_connections = {max_connections}\n{extras}\n"
        + ('[engine]\nkind = "vllm"\nmax_model_len = 512\n' if engine == "vllm" else "")
    )
    log = folder / f"{model}.stderr"
    env = {**os.environ, "AIMOD_SECRET": SECRET, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    process = subprocess.Popen(
        [sys.executable, "-c", "from aimod.cli import main; main()", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return Server(model, process, port, log)


def canary_loop(base: str, path: str, body: dict[str, Any], out: str) -> None:
    """The canary's process: ordinary requests in a loop, one line per request (end time, latency, status)."""
    with httpx.Client(base_url=base, headers=auth("canary"), timeout=120) as client, open(out, "a") as log:
        while True:
            begin = time.monotonic()
            try:
                status = client.post(path, json=body).status_code
            except httpx.HTTPError:
                status = -1
            end = time.monotonic()
            log.write(f"{end} {end - begin} {status}\n")
            log.flush()
            time.sleep(0.02)


class Canary:
    """A canary tenant in its own process, so the attacking client's work never holds its interpreter."""

    def __init__(self, base: str, path: str, body: dict[str, Any], folder: Path) -> None:
        self.out = folder / f"canary-{free_port()}.txt"
        self.out.touch()
        self.process = multiprocessing.get_context("spawn").Process(
            target=canary_loop, args=(base, path, body, str(self.out)), daemon=True
        )

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(30)

    @property
    def samples(self) -> list[tuple[float, float, int]]:
        """(end time on the monotonic clock, latency in s, status) per request so far."""
        rows = []
        for line in self.out.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append((float(parts[0]), float(parts[1]), int(parts[2])))
        return rows

    def since(self, start: float) -> list[tuple[float, int]]:
        """Latencies and statuses of the requests that ended after ``start`` (so overlapped the case)."""
        return [(lat, status) for end, lat, status in self.samples if end >= start]

    def count(self) -> int:
        return len(self.samples)


@dataclass
class Result:
    name: str
    statuses: list[str]
    refuse_s: float
    ok: bool
    note: str = ""
    canary_worst_ms: float = float("nan")
    canary_median_ms: float = float("nan")
    canary_errors: int = 0
    ratio: float = float("nan")


@dataclass
class Bench:
    results: list[Result] = field(default_factory=list)
    fds: dict[str, list[int]] = field(default_factory=dict)


def timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    begin = time.perf_counter()
    response = client.request(method, path, **kwargs)
    return response, time.perf_counter() - begin


def code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except (json.JSONDecodeError, AttributeError):
        error = {}
    return f"{response.status_code}" + (f" {error.get('code') or error.get('type')}" if error else "")


def run_case(bench: Bench, canary: Canary, idle_ms: float, name: str, case: Callable[[], Result]) -> None:
    """Runs one case; the canary's requests that overlapped it (started before its end, ended after its start)."""
    settle = canary.count()
    while canary.count() < settle + 2:  # the previous case's last canary request is over
        time.sleep(0.01)
    start = time.monotonic()
    try:
        result = case()
    except Exception as exc:  # a broken case is reported, not hidden
        result = Result(name, [f"error {type(exc).__name__}: {exc}"[:120]], float("nan"), False)
    end = time.monotonic()
    after = canary.count()
    while canary.count() < after + 1:  # the canary request in flight at the case's end is over
        time.sleep(0.01)
    ended = [(finish, lat, status) for finish, lat, status in canary.samples if finish >= start]
    seen = [(lat, status) for finish, lat, status in ended if finish - lat <= end] or [ended[0][1:]]
    # (a case shorter than the canary's pause between requests: the canary's next request)
    result.name = name
    result.canary_worst_ms = 1000 * max(lat for lat, _ in seen)
    result.canary_median_ms = 1000 * statistics.median(lat for lat, _ in seen)
    result.canary_errors = sum(status != 200 for _, status in seen)
    result.ratio = result.canary_worst_ms / idle_ms
    bench.results.append(result)
    print_row(result)


def print_row(r: Result) -> None:
    goal = "ok" if r.ok else "GOAL NOT MET"
    canary = f"{r.canary_worst_ms:.0f} (median {r.canary_median_ms:.0f})"
    canary += f" ({r.canary_errors} canary errors)" if r.canary_errors else ""
    print(
        f"{r.name} | {', '.join(r.statuses)} | {r.refuse_s:.3f} | {canary} | {r.ratio:.2f}x | {goal}"
        + (f" | {r.note}" if r.note else ""),
        flush=True,
    )


def quiet() -> Result:
    """A reference, not an attack: three seconds of the canary alone, the noise floor of worst/idle."""
    time.sleep(3)
    return Result("", ["-"], 0.0, True, "no attack: the canary's own spread")


def is_4xx(response: httpx.Response) -> bool:
    return 400 <= response.status_code < 500


# ---------------------------------------------------------------- text cases


JSON = {"Content-Type": "application/json"}


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def long_words() -> dict[str, float]:
    """64 focus words of 100,000 characters each (6.4 MB)."""
    return {f"{i:02d}" + "w" * 99_998: 1.0 for i in range(64)}


def many_keys() -> dict[str, float]:
    """1,000,000 distinct focus keys: ``"000000":0.5,`` is 13 bytes, so a 13 MB body."""
    return {f"{i:06d}": 0.5 for i in range(1_000_000)}


def text_cases(client: httpx.Client, server: Server) -> dict[str, Callable[[], Result]]:
    """The text cases; every body is built here, before any case's window opens."""
    big = "x" * 15_000_000
    completion_15mb = dumps({"model": TEXT_MODEL, "prompt": big, "max_tokens": 1})
    chat_15mb = dumps({"model": TEXT_MODEL, "messages": [{"role": "user", "content": big}]})
    words_body = dumps({"model": TEXT_MODEL, "prompt": "hi", "focus": long_words()})
    keys_body = dumps({"model": TEXT_MODEL, "prompt": "hi", "focus": many_keys()})
    long_prompt = dumps({"model": TEXT_MODEL, "prompt": "word " * 30_000, "max_tokens": 1})
    hang_body = dumps({"model": TEXT_MODEL, "prompt": "Tell me a story", "max_tokens": 100})

    def c1() -> Result:
        a, ta = timed(client, "POST", "/v1/completions", content=completion_15mb, headers=JSON)
        b, tb = timed(client, "POST", "/v1/chat/completions", content=chat_15mb, headers=JSON)
        return Result("", [code(a), code(b)], max(ta, tb), a.status_code == 413 and b.status_code == 413)

    def c2() -> Result:
        a, ta = timed(client, "POST", "/v1/completions", content=words_body, headers=JSON)
        return Result("", [code(a)], ta, is_4xx(a), f"{len(words_body) / 1e6:.1f} MB body (max_text_body_bytes 2 MB)")

    def c3() -> Result:
        a, ta = timed(client, "POST", "/v1/completions", content=keys_body, headers=JSON)
        return Result("", [code(a)], ta, is_4xx(a), f"{len(keys_body) / 1e6:.1f} MB body (max_text_body_bytes 2 MB)")

    def c4() -> Result:  # 150,000 characters: over max_prompt_chars (100,000), under the 2 MB text body
        a, ta = timed(client, "POST", "/v1/completions", content=long_prompt, headers=JSON)
        ok = a.status_code == 400 and "context_length_exceeded" in code(a)
        return Result("", [code(a)], ta, ok)

    def c12a() -> Result:
        return hang_ups(server, "/v1/completions", hang_body, mid_body=10, mid_answer=0)

    def c12b() -> Result:
        return hang_ups(server, "/v1/completions", hang_body, mid_body=0, mid_answer=3)

    def reference() -> Result:
        return ordinary(client, hang_body)

    def c7() -> Result:
        head = {"Content-Type": "application/json"}
        m = TEXT_MODEL.encode()
        bodies = [
            (b"/v1/completions", b'{"model": "%s", "prompt": "a\\ud800b", "max_tokens": 1}' % m),
            (b"/v1/chat/completions", b'{"model": "%s", "messages": [{"role": "user", "content": "\\ud800"}]}' % m),
            (b"/v1/completions", b'{"model": "%s", "prompt": "hi", "focus": {"\\ud800": 1.0}}' % m),
        ]
        out = [timed(client, "POST", path.decode(), content=body, headers=head) for path, body in bodies]
        return Result("", [code(r) for r, _ in out], max(t for _, t in out), all(r.status_code == 400 for r, _ in out))

    def c9() -> Result:
        base = {"model": TEXT_MODEL, "prompt": "hi", "max_tokens": 1}
        tries: list[tuple[str, dict[str, Any], str, tuple[int, ...]]] = [
            ("focus true", {**base, "focus": {"Paris": True}}, "", (400, 422)),
            ('focus "4"', {**base, "focus": {"Paris": "4"}}, "", (400, 422)),
            ("max_tokens true", {**base, "max_tokens": True}, "", (400, 422)),
            ('max_tokens "5"', {**base, "max_tokens": "5"}, "", (400, 422)),
            ("?Sigma=0", base, "?Sigma=0", (403,)),
            ("?sigma=0", base, "?sigma=0", (403,)),
            ("stream_options.sigma", {**base, "stream": True, "stream_options": {"sigma": 0}}, "", (403,)),
        ]
        statuses, worst, ok = [], 0.0, True
        for label, body, query, expected in tries:
            r, t = timed(client, "POST", "/v1/completions" + query, json=body)
            statuses.append(f"{label}: {code(r)}")
            worst, ok = max(worst, t), ok and r.status_code in expected
        return Result("", statuses, worst, ok)

    def c10() -> Result:
        out = [timed(client, "GET", path) for path in ("/v1/completions", "/v1/chat/completions")]
        statuses = [f"{r.status_code} Allow: {r.headers.get('allow')}" for r, _ in out]
        ok = all(r.status_code == 405 and r.headers.get("allow") for r, _ in out)
        return Result("", statuses, max(t for _, t in out), ok)

    return {"ref: no attack, 3 s": quiet, "1 15 MB prompts": c1, "2 64 focus words x 100k": c2, "3 1,000,000 focus keys": c3,
            "4 prompt > max_prompt_chars": c4, "7 lone surrogates": c7, "9 lax fields / noise fields": c9,
            "10 405 Allow": c10, "12 hang-ups (text, mid-body)": c12a,
            "12 hang-ups (text, mid-generation)": c12b, "ref: one ordinary 100-token completion": reference}  # fmt: skip


def request_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``request`` log lines of everyone but the canary."""
    return [line for line in lines if line.get("event") == "request" and line.get("tenant") != "canary"]


def hang_ups(server: Server, path: str, body: bytes, *, mid_body: int, mid_answer: int) -> Result:
    """Clients hanging up: ``mid_body`` half-way through their body, ``mid_answer`` after a whole request."""
    before = len(server.log_lines())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth('free')['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    begin = time.perf_counter()
    for _ in range(mid_body):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body[: len(body) // 2])
            time.sleep(0.05)
    for _ in range(mid_answer):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body)
            time.sleep(0.3)  # the request is being served (a generation has started); hang up before it ends
    deadline = time.monotonic() + 30
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = server.log_lines()[before:]
        if len(request_lines(lines)) >= mid_body + mid_answer:
            break
        time.sleep(0.2)
    took = time.perf_counter() - begin
    bad = [line for line in lines if line.get("level") not in ("info", "debug")]
    mine = request_lines(lines)
    kinds = sorted({f"{line.get('status')} {line.get('error') or ''}".strip() for line in mine})
    statuses = [f"{len(mine)} logged as {', '.join(kinds)}"]
    note = f"{len(bad)} warning/error log lines" + (f": {bad[:2]}" if bad else "")
    served = [line for line in mine if line.get("status") == 200]
    if served:
        slowest = max(float(line.get("ms", 0)) for line in served)
        note += f"; {len(served)} abandoned requests were served to the end (up to {slowest:.0f} ms) and logged 200"
    return Result("", statuses, took, not bad, note)


def ordinary(client: httpx.Client, body: bytes) -> Result:
    """A reference, not an attack: one ordinary long completion, to tell its effect on the canary apart."""
    r, t = timed(client, "POST", "/v1/completions", content=body, headers=JSON)
    tokens = r.json().get("usage", {}).get("completion_tokens") if r.status_code == 200 else None
    return Result("", [f"{code(r)} ({tokens} tokens)"], t, r.status_code == 200, "served (time to answer)")


def shutdown(server: Server, in_flight: int) -> Result:
    """SIGTERM while ``in_flight`` long completions are being generated; time to exit and exit status."""
    results: list[str] = []

    def long_completion() -> None:
        try:
            with httpx.Client(base_url=server.base, headers=auth("free"), timeout=120) as c:
                r = c.post(
                    "/v1/completions", json={"model": TEXT_MODEL, "prompt": "Once upon a time", "max_tokens": 200}
                )
                results.append(
                    f"{r.status_code} ({len(r.json()['choices'][0]['text']) if r.status_code == 200 else code(r)})"
                )
        except httpx.HTTPError as exc:
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=long_completion) for _ in range(in_flight)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    before = len(server.log_lines())
    begin = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    try:
        status = server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        status = server.process.wait()
    took = time.perf_counter() - begin
    for t in threads:
        t.join(30)
    errors = [line for line in server.log_lines()[before:] if line.get("level") not in ("info", "debug")]
    events = "; ".join(sorted({str(line.get("event", "")).strip() for line in errors}))
    note = (
        f"exit status {status} after {took:.2f} s (graceful_timeout_s {TIMEOUTS['graceful_timeout_s']:g}); "
        f"{len(errors)} warning/error log lines" + (f": {events}" if events else "")
    )
    return Result("", [f"in flight: {', '.join(results)}"], took, status == 0, note)


# ---------------------------------------------------------------- vision cases


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def vision_cases(
    client: httpx.Client, server: Server, quick: bool, sockets: tuple[int, int, int], peaks: list[int]
) -> dict[str, Callable[[], Result]]:
    """The vision cases (the connection flood too); every body is built here, before any case's window opens."""
    from PIL import Image

    from aimod.data.fashion_mnist import load_fashion_mnist

    images, _ = load_fashion_mnist("test")
    small = base64.b64encode(png_bytes(Image.fromarray(images[0].numpy()))).decode()
    words_body = dumps({"image": small, "focus": long_words()})
    keys_body = dumps({"image": small, "focus": many_keys()})
    pairs = []
    for i in range(10 if quick else 30):
        eight = images[i].numpy()
        sixteen = Image.frombytes("I;16", (28, 28), (eight.astype("<u2") * 257).tobytes())  # 0..255 -> 0..65535
        assert sixteen.mode == "I;16"
        pairs.append([dumps({"image": base64.b64encode(png_bytes(im)).decode(), "top_k": 1})
                      for im in (Image.fromarray(eight), sixteen)])  # fmt: skip
    # 100 Mpx: past Pillow's 89 Mpx decompression-bomb limit; 4.4 Mpx: past max_image_pixels (4,194,304)
    bombs = {side: png_bytes(Image.new("L", (side, side))) for side in (10_000, 2_100)}
    bomb_bodies = {side: dumps({"image": base64.b64encode(data).decode()}) for side, data in bombs.items()}
    hang_body = dumps({"image": small})

    def c2() -> Result:
        a, ta = timed(client, "POST", "/v1/classify", content=words_body, headers=JSON)
        return Result("", [code(a)], ta, is_4xx(a), f"{len(words_body) / 1e6:.1f} MB body")

    def c3() -> Result:
        a, ta = timed(client, "POST", "/v1/classify", content=keys_body, headers=JSON)
        return Result("", [code(a)], ta, is_4xx(a), f"{len(keys_body) / 1e6:.1f} MB body (max_body_bytes 16 MB)")

    def c6() -> Result:
        result, peak = asyncio.run(connection_flood(server.port, *sockets, pid=server.process.pid))
        peaks.append(peak)
        return result

    def c12() -> Result:
        return hang_ups(server, "/v1/classify", hang_body, mid_body=10, mid_answer=5)

    def c5() -> Result:
        boundary = "abuse-boundary"
        head = (
            f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('free')['Authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        piece = 65_536
        chunk = b"%x\r\n%s\r\n" % (piece, b"\0" * piece)
        total, sent_body = 100 * 2**20, 0
        answer = b""
        begin = time.perf_counter()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
            sock.setblocking(False)
            view = memoryview(b"")
            closed = ""
            while sent_body < total:
                readable, writable, _ = select.select([sock], [sock], [], 10)
                if readable:
                    break
                if not writable:
                    closed = "stalled"
                    break
                if not view:
                    view = memoryview(chunk)
                try:
                    n = sock.send(view)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    closed = type(exc).__name__
                    break
                view = view[n:]
                sent_body += n
            took = time.perf_counter() - begin
            sock.setblocking(True)
            sock.settimeout(10)
            try:
                while chunk_in := sock.recv(65_536):
                    answer += chunk_in
            except (ConnectionResetError, TimeoutError, OSError):
                pass
        status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace") or f"no answer ({closed})"
        body = answer.split(b"\r\n\r\n", 1)[-1][:120].decode(errors="replace")
        note = f"{sent_body / 1e6:.2f} MB sent before the server answered/closed (limit 16 MB); {body}"
        return Result("", [status_line.removeprefix("HTTP/1.1 ")], took, b" 413 " in answer[:20], note)

    def c8() -> Result:
        same, worst = 0, 0.0
        for pair in pairs:
            answers = []
            for body in pair:
                r, t = timed(client, "POST", "/v1/classify", content=body, headers={**JSON, **auth("premium")})
                worst = max(worst, t)
                answers.append(r.json()["labels"][0]["label"] if r.status_code == 200 else code(r))
            same += answers[0] == answers[1]
        count = len(pairs)
        return Result("", [f"same label {same}/{count}"], worst, same == count, "served (200), timed per request")

    def c9() -> Result:
        tries: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
            ("focus true", {"image": small, "focus": {"Bag": True}}, (400, 422)),
            ('focus "4"', {"image": small, "focus": {"Bag": "4"}}, (400, 422)),
            ("top_k true", {"image": small, "top_k": True}, (400, 422)),
            ('top_k "5"', {"image": small, "top_k": "5"}, (400, 422)),
        ]
        statuses, worst, ok = [], 0.0, True
        for label, body, expected in tries:
            r, t = timed(client, "POST", "/v1/classify", json=body)
            statuses.append(f"{label}: {code(r)}")
            worst, ok = max(worst, t), ok and r.status_code in expected
        for query in ("?Sigma=0", "?sigma=0"):
            r, t = timed(client, "POST", "/v1/classify" + query, json={"image": small})
            statuses.append(f"{query}: {code(r)}")
            worst, ok = max(worst, t), ok and r.status_code == 403
        return Result("", statuses, worst, ok)

    def c10() -> Result:
        r, t = timed(client, "GET", "/v1/classify")
        return Result(
            "",
            [f"{r.status_code} Allow: {r.headers.get('allow')}"],
            t,
            r.status_code == 405 and bool(r.headers.get("allow")),
        )

    def c11() -> Result:
        statuses, worst, ok = [], 0.0, True
        for side, body in bomb_bodies.items():
            r, t = timed(client, "POST", "/v1/classify", content=body, headers=JSON)
            statuses.append(f"{side}x{side} ({len(bombs[side]) // 1000} kB PNG): {code(r)}")
            worst, ok = max(worst, t), ok and r.status_code == 413
        return Result("", statuses, worst, ok)

    flood = f"6 {sockets[0]} idle / {sockets[1]} slow-body / {sockets[2]} header-trickle sockets"
    return {"ref: no attack, 3 s": quiet, "2 64 focus words x 100k (vision)": c2, "3 1,000,000 focus keys (vision)": c3,
            "5 chunked 100 MB multipart": c5, flood: c6, "8 16-bit grey PNG, premium": c8,
            "9 lax fields / ?Sigma (vision)": c9, "10 405 Allow (vision)": c10, "11 decompression bombs": c11,
            "12 hang-ups (vision, mid-body and mid-answer)": c12}  # fmt: skip


# ---------------------------------------------------------------- connections (case 6)


async def connection_flood(port: int, idle: int, slow: int, trickle: int, pid: int) -> tuple[Result, int]:
    """Opens the sockets, keeps them busy the slow way, and times when the server closes each one."""
    closed_after: dict[str, list[float]] = {"idle": [], "slow body": [], "trickle": []}
    begin = time.perf_counter()
    peak = 0
    head = f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('free')['Authorization']}\r\n"

    async def one(kind: str) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            closed_after[kind].append(float("nan"))
            return
        opened = time.perf_counter()
        try:
            if kind == "slow body":
                writer.write((head + "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n").encode())
            while True:
                if kind == "trickle":
                    writer.write(b"X")
                elif kind == "slow body":
                    writer.write(b" ")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), 0.5 if kind != "idle" else 30)
                except asyncio.TimeoutError:
                    if time.perf_counter() - opened > 30:
                        break
                    continue
                if not data:
                    break
                # a response (e.g. 408/503) also counts: read on until the close
        except (ConnectionResetError, BrokenPipeError):
            pass
        closed_after[kind].append(time.perf_counter() - opened)
        writer.close()

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, open_fds(pid))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    tasks = []
    # a trickler sends one byte ("X") per half second: a request line that never ends
    for kind, count in (("idle", idle), ("slow body", slow), ("trickle", trickle)):
        for _ in range(count):
            tasks.append(asyncio.create_task(one(kind)))
            if len(tasks) % 100 == 0:
                await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    watcher.cancel()
    took = time.perf_counter() - begin
    limits = {"idle": TIMEOUTS["header_timeout_s"], "slow body": TIMEOUTS["body_timeout_s"],
              "trickle": TIMEOUTS["header_timeout_s"]}  # fmt: skip
    statuses, ok = [], True
    for kind, times in closed_after.items():
        good = [t for t in times if t == t]
        worst = max(good) if good else float("nan")
        fine = len(good) == len(times) and worst <= limits[kind] + 1.5
        ok = ok and fine
        statuses.append(
            f"{len(good)}/{len(times)} {kind} closed by server, worst {worst:.1f} s (limit {limits[kind]:g} s)"
        )
    return Result("", statuses, took, ok), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sockets and images (about half the time)")
    parser.add_argument(
        "--text-engine", choices=["hf", "vllm"], default="hf",
        help="the text server's [engine] kind (vllm: run from .venv-vllm, scripts/bootstrap-vllm.sh)",
    )  # fmt: skip
    args = parser.parse_args()
    sockets = (100, 30, 300) if args.quick else (300, 100, 1500)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))  # the servers inherit it
    folder = Path(tempfile.mkdtemp(prefix="aimod-abuse-"))
    started = time.perf_counter()
    cap = sum(sockets) + 200
    servers = [start_server("resnet-fashion", folder, cap), start_server(TEXT_MODEL, folder, cap, args.text_engine)]
    bench = Bench()
    print(
        f"aimod serve on loopback, {os.cpu_count()} CPUs; [server] {TIMEOUTS}, max_connections {cap}; "
        f"text engine {args.text_engine}",
        flush=True,
    )
    try:
        for server in servers:
            wait_healthy(server.base, server.process, timeout=300)
        vision, text = servers
        print("case | status(es) | time to refuse (s) | canary worst (ms) | worst/idle | goal | notes", flush=True)

        # ---- vision
        from PIL import Image

        from aimod.data.fashion_mnist import load_fashion_mnist

        image = load_fashion_mnist("test")[0][1].numpy()
        canary_body = {"image": base64.b64encode(png_bytes(Image.fromarray(image))).decode(), "top_k": 3}
        text_body = {"model": TEXT_MODEL, "prompt": "The capital of France is", "max_tokens": 4}
        for server, path, body in ((vision, "/v1/classify", canary_body), (text, "/v1/completions", text_body)):
            time.sleep(TIMEOUTS["keep_alive_s"] + 0.5)  # the health checks' connections are gone
            baseline = open_fds(server.process.pid)
            canary = Canary(server.base, path, body, folder)
            canary.start()
            while canary.count() < 25:
                time.sleep(0.05)
            idle_ms = 1000 * statistics.median(lat for _, lat, _ in canary.samples[5:25])
            print(
                f"-- {server.model}: canary idle median {idle_ms:.1f} ms over 20 requests; fds at baseline {baseline}"
            )
            peak = baseline
            with httpx.Client(base_url=server.base, headers=auth("free"), timeout=120) as client:
                peaks: list[int] = []
                chosen = (
                    vision_cases(client, server, args.quick, sockets, peaks)
                    if server is vision
                    else text_cases(client, server)
                )
                for name, case in chosen.items():
                    run_case(bench, canary, idle_ms, name, case)
                    peak = max([peak, open_fds(server.process.pid), *peaks])
            canary.stop()
            time.sleep(TIMEOUTS["keep_alive_s"] + 1.0)
            after = open_fds(server.process.pid)
            bench.fds[server.model] = [baseline, peak, after]
            print(f"-- {server.model}: fds baseline/peak/after {baseline}/{peak}/{after}", flush=True)

        # ---- shutdown (no canary: the server is going away)
        result = shutdown(text, 3)
        result.name = "13 SIGTERM, 3 completions in flight"
        bench.results.append(result)
        print(f"{result.name} | {', '.join(result.statuses)} | {result.refuse_s:.3f} (to exit) | - | - | {result.note}")
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
                try:
                    server.process.wait(30)
                except subprocess.TimeoutExpired:
                    server.process.kill()
    judged = [r for r in bench.results if not r.name.startswith(("13", "ref"))]
    failed = [r for r in judged if not r.ok]
    worst = max((r.ratio for r in judged if r.ratio == r.ratio), default=float("nan"))
    worst_case = max((r for r in judged if r.ratio == r.ratio), key=lambda r: r.ratio, default=None)
    print()
    print(f"every case 4xx or served: {'yes' if not failed else 'no'}"
          + (f" (not met: {', '.join(r.name for r in failed)})" if failed else ""))  # fmt: skip
    print(f"canary worst/idle max: {worst:.2f}x (goal <= 2x){'' if worst <= 2 else ' NOT MET'}"
          + (f", in case {worst_case.name!r}" if worst_case else ""))  # fmt: skip
    floors = [f"{r.ratio:.2f}x" for r in bench.results if r.name.startswith("ref: no attack")]
    print(f"  canary worst/idle with no attack at all (the measurement's noise floor): {', '.join(floors)}")
    over = [r.name for r in judged if r.ratio > 2]
    if over:
        print(f"  cases over 2x: {', '.join(over)}")
    for model, (baseline, peak, after) in bench.fds.items():
        verdict = "" if after == baseline else " NOT MET"
        print(f"fds baseline/peak/after ({model}): {baseline}/{peak}/{after} (goal after == baseline){verdict}")
    shut = next((r for r in bench.results if r.name.startswith("13")), None)
    if shut:
        print(f"shutdown: {shut.note}; in-flight completions got {shut.statuses[0].removeprefix('in flight: ')}")
    print(f"total {time.perf_counter() - started:.0f} s; server logs in {folder}")


if __name__ == "__main__":
    main()
