"""`aimod serve --engine vllm` against `--engine hf` and against plain `vllm serve`, under the same mixed load.

Issue 13's serving goals: at 16 concurrent clients with mixed lengths (8 and 128 new tokens), aimod on vLLM has
at least 2x the throughput of aimod on Hugging Face `generate`, and at most a third of its p50 latency for the
short requests; against plain `vllm serve` (same model, same load, no modulation) at least 0.9x the throughput.

Three servers on loopback, one at a time, each from this environment (.venv-vllm, where both engines run):
aimod with `[engine] kind = "hf"`, aimod with `kind = "vllm"` (every request at the free tier, sigma 1, the
server's default field keying), and `vllm serve` on the same SmolLM2 folder without aimod's processor. Each gets
a warm-up request, then the load: 16 client threads, each sending `--requests` completions in turn, alternately
short and long (half the clients start with a long one), prompts from the fact set, greedy. Printed per server:
wall time, completion tokens, tokens/s, p50 and worst latency of short and long requests; then the ratios.
Throughput counts the tokens generated (usage.completion_tokens): a completion may end early at EOS.

Run: .venv-vllm/bin/python benchmarks/bench_vllm_serving.py [--requests 4] [--clients 16] [--only hf,vllm,plain]
(about 10 minutes on 2 CPU cores; needs scripts/bootstrap-vllm.sh)
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
import openai

from aimod.data.facts import fact_items
from aimod.server.config import hash_key
from aimod.text.models import smollm2_folder

MODEL = "smollm2-135m"
KEY = "bench-vllm-serving-key-0123456789"
SECRET = "bench-vllm-serving-secret-0123456789"
SHORT, LONG = 8, 128
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(AIMOD_SECRET=SECRET, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1",
               VLLM_NO_USAGE_STATS="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    return env


def start(kind: str, folder: Path) -> tuple[subprocess.Popen[bytes], str, str, str]:
    """A server of ``kind`` (hf, vllm, plain); returns the process, its base URL, the model name and the key."""
    port = free_port()
    if kind == "plain":
        command = [str(BIN / "vllm"), "serve", str(smollm2_folder()), "--host", "127.0.0.1", "--port", str(port),
                   "--dtype", "float32", "--max-model-len", "512", "--enforce-eager", "--max-num-seqs", "16",
                   "--served-model-name", MODEL]  # fmt: skip
        health = "/health"
    else:
        config = folder / f"{kind}.toml"
        engine = f'[engine]\nkind = "{kind}"\n' + ("max_model_len = 512\nmax_num_seqs = 16\n" if kind == "vllm" else "")
        config.write_text(
            f'[model]\nname = "{MODEL}"\n[tiers]\nsigma = {{ premium = 0.0, free = 1.0 }}\n'
            f'[[tenants]]\nname = "bench"\ntier = "free"\nkey_sha256 = "{hash_key(KEY)}"\n{engine}'
            f"[server]\nport = {port}\nmax_batch = 16\nmax_new_tokens = 256\n"
        )
        command = [str(BIN / "aimod"), "serve", "--config", str(config)]
        health = "/healthz"
    log = (folder / f"{kind}.log").open("wb")
    process = subprocess.Popen(command, env=environment(), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 400
    while True:
        try:
            if httpx.get(base + health, timeout=5).status_code == 200:
                return process, base, MODEL, KEY if kind != "plain" else "-"
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{kind} server did not start; see {folder / f'{kind}.log'}")
        time.sleep(1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def load(base: str, model: str, key: str, clients: int, requests: int) -> dict[str, float]:
    """The mixed load; latencies and token counts per request kind."""
    stems = [item.stem for item in fact_items()]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=900)
    client.completions.create(model=model, prompt="Hello", max_tokens=4, temperature=0)  # warm-up

    def one_client(c: int) -> list[tuple[str, float, int]]:
        out = []
        for r in range(requests):
            size = SHORT if (c + r) % 2 == 0 else LONG
            began = time.perf_counter()
            reply = client.completions.create(model=model, prompt=stems[(c * requests + r) % len(stems)],
                                              max_tokens=size, temperature=0)  # fmt: skip
            out.append(
                ("short" if size == SHORT else "long", time.perf_counter() - began, reply.usage.completion_tokens)
            )
        return out

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        rows = [row for rows in pool.map(one_client, range(clients)) for row in rows]
    wall = time.perf_counter() - began
    tokens = sum(t for _, _, t in rows)
    short = [s for kind, s, _ in rows if kind == "short"]
    long = [s for kind, s, _ in rows if kind == "long"]
    return {"wall": wall, "tokens": tokens, "rate": tokens / wall, "short_p50": statistics.median(short),
            "short_max": max(short), "long_p50": statistics.median(long), "long_max": max(long)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per client, alternately short and long")
    parser.add_argument("--only", default="hf,vllm,plain")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aimod-vllm-serving-"))
    kinds = args.only.split(",")
    print(f"{args.clients} clients x {args.requests} completions ({SHORT} and {LONG} new tokens, alternating), "
          f"greedy, {os.cpu_count()} CPUs; aimod at the free tier (sigma 1, field keying); logs in {folder}")  # fmt: skip
    print("server | wall (s) | tokens | tokens/s | short p50 / worst (s) | long p50 / worst (s)")
    results = {}
    for kind in kinds:
        process, base, model, key = start(kind, folder)
        try:
            r = load(base, model, key, args.clients, args.requests)
        finally:
            stop(process)
        results[kind] = r
        name = {"hf": "aimod --engine hf", "vllm": "aimod --engine vllm", "plain": "vllm serve (no aimod)"}[kind]
        print(f"{name} | {r['wall']:.1f} | {r['tokens']:.0f} | {r['rate']:.1f} | {r['short_p50']:.2f} / "
              f"{r['short_max']:.2f} | {r['long_p50']:.2f} / {r['long_max']:.2f}", flush=True)  # fmt: skip
    if "hf" in results and "vllm" in results:
        hf, vl = results["hf"], results["vllm"]
        print(f"throughput vllm/hf: {vl['rate'] / hf['rate']:.2f}x (goal >= 2x); short p50 vllm/hf: "
              f"{vl['short_p50'] / hf['short_p50']:.2f} (goal <= 0.33)")  # fmt: skip
    if "plain" in results and "vllm" in results:
        print(f"throughput aimod-vllm / plain vllm: {results['vllm']['rate'] / results['plain']['rate']:.2f}x "
              "(goal >= 0.9x)")  # fmt: skip


if __name__ == "__main__":
    main()
