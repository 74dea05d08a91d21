"""``aimod serve`` with ``[engine] kind = "vllm"``: a real server on loopback, the real OpenAI client."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from aimod.calibrate.tiers import load_tiers
from aimod.data.facts import fact_items, spread
from aimod.server.config import hash_key, load_config
from aimod.server.served import build
from aimod.server.text import TextRow
from tests.vllm.conftest import SECRET, engine_env

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m"
KEYS = {"premium": "vllm-serve-premium-key-0123", "free": "vllm-serve-free-key-0123456"}
TIERS = Path(__file__).with_name("tiers-smollm2-135m.toml")
"""A tiers file from `aimod calibrate --model smollm2-135m` (on the hf path, field keying): it loads unchanged here."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, engine: str, port: int) -> Path:
    tenants = "".join(
        f'[[tenants]]\nname = "{n}"\ntier = "{n}"\nkey_sha256 = "{hash_key(k)}"\n' for n, k in KEYS.items()
    )
    path = folder / f"server-{engine}.toml"
    path.write_text(
        f'[model]\nname = "{MODEL}"\n[tiers]\nfile = "{TIERS}"\n'
        f'[focus]\nallowed = ["*"]\nmax_sigma = 4.0\n{tenants}[engine]\nkind = "{engine}"\nmax_model_len = 512\n'
        f"[server]\nport = {port}\ngraceful_timeout_s = 10\n"
    )
    return path


class Server:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = write_config(folder, "vllm", self.port)
        self.log = folder / "server.log"
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from aimod.cli import main; main()", "serve", "--config", str(self.config)],
                env=engine_env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{self.base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"aimod serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def client(self, tier: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key=KEYS[tier], max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("serve"))
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(60)
            except subprocess.TimeoutExpired:
                running.process.kill()


@pytest.fixture(scope="module")
def hf_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The ``hf`` engine with the same configuration and secret, in this process."""
    config = load_config(write_config(tmp_path_factory.mktemp("hf"), "hf", free_port()))
    served = build(config, SECRET)
    assert served.tiers == {tier.name: tier.sigma for tier in load_tiers(TIERS).tiers}  # the calibrated σ
    assert served.tiers["free"] > 1.0
    return served


def hf_text(served: Any, ids: list[int], tier: str, max_tokens: int) -> str:
    from aimod import Modulation

    row = TextRow(ids=ids, modulation=Modulation(sigma=served.tiers[tier]), max_tokens=max_tokens)
    return str(served.text.run([row])[0]["text"])


def test_completions_at_each_tier_equal_the_hf_engines(server: Server, hf_engine: Any) -> None:
    stems = [item.stem for item in spread(fact_items(), 4)]
    for tier in KEYS:
        client = server.client(tier)
        for stem in stems:
            got = client.completions.create(model=MODEL, prompt=stem, max_tokens=12).choices[0].text
            assert got == hf_text(hf_engine, hf_engine.text.prompt_ids(stem), tier, 12), (tier, stem)


def test_chat_and_its_stream_equal_the_hf_engines(server: Server, hf_engine: Any) -> None:
    messages = [{"role": "user", "content": "What is the capital of Italy?"}]
    client = server.client("free")
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16)  # type: ignore[arg-type]
    text = reply.choices[0].message.content
    assert text == hf_text(hf_engine, hf_engine.text.chat_ids(messages), "free", 16)
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, stream=True)  # type: ignore[arg-type]
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == text
    assert len([p for p in pieces if p]) > 3  # streamed as it was generated, not in one piece


def test_a_short_request_finishes_while_a_long_generation_runs(server: Server) -> None:
    client = server.client("free")

    def long() -> float:
        client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=256)
        return time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(long)
        time.sleep(2.0)  # the long one is generating
        short = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4)
        short_done = time.monotonic()
        assert not running.done()  # continuous batching: no waiting for the long one's batch to end
        long_done = running.result()
    assert short.choices[0].finish_reason == "length"
    assert short_done < long_done


@pytest.mark.parametrize(
    "extra",
    [
        {"vllm_xargs": {"aimod_sigma": 0.0}},
        {"extra_args": {"aimod_sigma": 0.0}},
        {"logprobs": 1},
        {"prompt_logprobs": 1},
        {"echo": True},
    ],
)
def test_engine_fields_logprobs_and_echo_are_refused(server: Server, extra: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError):
        server.client("free").completions.create(model=MODEL, prompt="Hello", max_tokens=2, extra_body=extra)
    assert server.client("free").completions.create(model=MODEL, prompt="Hello", max_tokens=2).choices[0].text


def test_the_secret_is_in_no_log_line(server: Server) -> None:
    log = server.log.read_text()
    assert "EngineCore" in log  # vLLM's own process logged to the same place
    assert SECRET not in log


def test_sigterm_stops_the_engine_and_exits_0(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0
    assert '"event": "stopped"' in server.log.read_text()
