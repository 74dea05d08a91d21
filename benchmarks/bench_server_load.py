"""Load on a real `aimod serve` process over loopback: throughput, latency, errors, memory; modulated vs not.

Starts the server (resnet-fashion by default, or --model smollm2-135m) as a subprocess on a free loopback port,
then runs N concurrent asyncio httpx clients for a fixed time per phase. Phases alternate between the premium
tier (sigma 0: the operator returns the logits untouched) and the free tier (modulated), `--rounds` times each,
so both see the same machine state; each client sends a different input each time (Fashion-MNIST test
images, or fact questions for the language model). Printed: requests/s, p50 and p99 latency, errors (any
non-200 or transport error), the modulated/unmodulated throughput ratio (median over rounds), the server's
resident memory after start-up and after the load, and its batching counters. Stops by itself.

Run: python benchmarks/bench_server_load.py [--model resnet-fashion] [--clients 16] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _server import wait_healthy
from aimod.server.config import hash_key

KEYS = {"premium": "bench-premium-key-0123456789", "free": "bench-free-key-0123456789"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def payloads(model: str, count: int) -> list[dict]:
    if model == "smollm2-135m":
        from aimod.data.facts import fact_items

        items = fact_items()
        return [
            {"model": model, "messages": [{"role": "user", "content": items[i % len(items)].question}], "max_tokens": 8}
            for i in range(count)
        ]
    from PIL import Image

    from aimod.data.fashion_mnist import load_fashion_mnist

    images, _ = load_fashion_mnist("test")
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(images[i].numpy()).save(buffer, format="PNG")
        out.append({"image": base64.b64encode(buffer.getvalue()).decode(), "top_k": 3})
    return out


async def phase(base: str, path: str, tier: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {KEYS[tier]}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:

        async def worker(index: int) -> None:
            nonlocal errors
            i = index
            while time.perf_counter() < stop:
                begin = time.perf_counter()
                try:
                    response = await client.post(path, json=bodies[i % len(bodies)])
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - begin)
                i += clients

        began = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "throughput": len(latencies) / elapsed,
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests": len(latencies),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet-fashion")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--wait-ms", type=float, default=5.0)
    args = parser.parse_args()
    text = args.model == "smollm2-135m"
    path = "/v1/chat/completions" if text else "/v1/classify"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="aimod-bench-"))
    config = folder / "server.toml"
    sigma_free = 2.0 if text else 6.2266
    config.write_text(
        f"""
[model]
name = "{args.model}"
[tiers]
sigma = {{ premium = 0.0, free = {sigma_free} }}
[[tenants]]
name = "gold"
tier = "premium"
key_sha256 = "{hash_key(KEYS["premium"])}"
[[tenants]]
name = "basic"
tier = "free"
key_sha256 = "{hash_key(KEYS["free"])}"
[server]
port = {port}
max_batch = {args.max_batch}
batch_wait_ms = {args.wait_ms}
"""
    )
    env = {**os.environ, "AIMOD_SECRET": "bench-secret-0123456789"}
    server = subprocess.Popen(
        [sys.executable, "-c", "from aimod.cli import main; main()", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server)
        bodies = payloads(args.model, 500 if not text else 220)
        asyncio.run(phase(base, path, "free", bodies, args.clients, 2.0))  # warm-up
        rss_before = rss_mib(server.pid)
        results: dict[str, list[dict]] = {"premium": [], "free": []}
        for _ in range(args.rounds):
            for tier in ("premium", "free"):
                results[tier].append(asyncio.run(phase(base, path, tier, bodies, args.clients, args.seconds)))
        rss_after = rss_mib(server.pid)
        health = httpx.get(f"{base}/healthz").json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(
        f"{args.model} on loopback: {args.clients} clients, {args.seconds:g} s per phase, {args.rounds} rounds, "
        f"max_batch {args.max_batch}, wait {args.wait_ms:g} ms, {os.cpu_count()} CPUs"
    )
    print("| tier | round | requests/s | p50 ms | p99 ms | requests | errors |")
    print("|---|---|---|---|---|---|---|")
    for tier, rounds in results.items():
        for i, r in enumerate(rounds):
            print(
                f"| {tier} | {i + 1} | {r['throughput']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['requests']} | "
                f"{r['errors']} |"
            )
    ratios = [f["throughput"] / p["throughput"] for f, p in zip(results["free"], results["premium"], strict=True)]
    errors = sum(r["errors"] for rounds in results.values() for r in rounds)
    print(f"modulated / unmodulated throughput: median {statistics.median(ratios):.3f} (per round {ratios})")
    print(f"errors: {errors}")
    print(f"server RSS: {rss_before:.0f} MiB after start-up and warm-up, {rss_after:.0f} MiB after the load")
    print(f"batches {health['batches']}, rows {health['rows']}, largest {health['largest_batch']}")


if __name__ == "__main__":
    main()
