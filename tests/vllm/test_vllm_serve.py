"""vLLM's own OpenAI server with aimod's processor (trusted-internal mode): the caller picks σ in ``vllm_xargs``.

One ``vllm serve`` process for the module, on a free loopback port, driven with the real ``openai`` client:
completions equal the Hugging Face path's, clean and keyed; malformed aimod arguments get HTTP 400 and the server
keeps serving; returned logprobs are the modulated ones; the secret is in nothing the server printed.
"""

from __future__ import annotations

import contextlib
import os
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
import torch

import aimod
from aimod import KeyedNoise, Modulation
from aimod.data.facts import fact_items, spread
from aimod.text.models import from_pretrained, smollm2_folder
from aimod.text.processor import AimLogitsProcessor
from aimod.vllm import extra_args
from tests.vllm.conftest import SECRET, engine_env

pytestmark = pytest.mark.slow
TOKENS = 8
PROMPTS = 4
STARTUP_S = 300

VLLM = Path(sys.executable).parent / "vllm"  # `vllm serve`, exactly vLLM's CLI (scripts/bootstrap-vllm.sh)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(log: Path, chars: int = 6000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-chars:]


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (vLLM then shuts its engine processes down), then SIGKILL to the server's whole process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # an engine process the server left behind
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``vllm serve`` on the SmolLM2 folder with aimod's processor; its URL and the file of all it printed."""
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    port = free_port()
    env = engine_env()
    source = str(Path(aimod.__file__).resolve().parents[1])  # the server loads the aimod these tests import
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    command = [
        str(VLLM), "serve", str(smollm2_folder()), "--host", "127.0.0.1", "--port", str(port),
        "--logits-processors", "aimod.vllm:AimodLogitsProcessor", "--logprobs-mode", "processed_logprobs",
        "--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"vllm serve exited with {process.returncode} before it was healthy:\n{tail(log)}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after {STARTUP_S} s:\n{tail(log)}")
            time.sleep(1)
        yield {"url": url, "log": log}
    finally:
        stop(process)


@pytest.fixture(scope="module")
def client(server: dict[str, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server['url']}/v1", api_key="unused", max_retries=0, timeout=300) as api:
        yield api


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def hf() -> tuple[Any, Any]:
    return from_pretrained(str(smollm2_folder()))


@pytest.fixture(scope="module")
def prompts(hf: tuple[Any, Any]) -> list[list[int]]:
    _, tokenizer = hf
    return [tokenizer.encode(item.stem) for item in spread(fact_items(), PROMPTS)]


def modulations(hf: tuple[Any, Any]) -> dict[str, Modulation | None]:
    _, tokenizer = hf
    paris = tokenizer.encode(" Paris", add_special_tokens=False)[0]
    return {"clean": None, "sigma": Modulation(sigma=1.0), "focus": Modulation(sigma=2.5, focus={paris: 4.0})}


def complete(
    client: openai.OpenAI, model: str, prompts: list[list[int]], modulation: Modulation | None, **options: Any
) -> Any:
    """One completions request for all ``prompts`` (token ids), greedy, aimod's arguments in ``vllm_xargs``."""
    body: dict[str, Any] = {"return_token_ids": True}
    if modulation is not None:
        body["vllm_xargs"] = extra_args(modulation)
    options.setdefault("max_tokens", TOKENS)
    return client.completions.create(model=model, prompt=prompts, temperature=0.0, extra_body=body, **options)


def hf_greedy(hf: tuple[Any, Any], ids: list[int], modulation: Modulation | None, tokens: int) -> Any:
    """The Hugging Face path's greedy generation (its scores are the processed ones)."""
    model, tokenizer = hf
    processor = AimLogitsProcessor(modulation or Modulation(), noise=KeyedNoise(SECRET))
    with torch.no_grad():
        return model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.int64), max_new_tokens=tokens,
            do_sample=False, logits_processor=[processor], pad_token_id=tokenizer.eos_token_id,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip


def hf_tokens(hf: tuple[Any, Any], ids: list[int], modulation: Modulation | None) -> list[int]:
    tokens = hf_greedy(hf, ids, modulation, TOKENS).sequences[0, len(ids) :].tolist()
    eos = hf[1].eos_token_id
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens  # vLLM returns the EOS it stopped at


@pytest.fixture(scope="module")
def served(client: openai.OpenAI, model: str, prompts: list[list[int]], hf: tuple[Any, Any]) -> dict[str, Any]:
    """Each modulation's completions of all the prompts, one request each."""
    return {name: complete(client, model, prompts, modulation) for name, modulation in modulations(hf).items()}


@pytest.mark.parametrize("name", ["clean", "sigma", "focus"])
def test_completions_equal_the_hf_paths_greedy_ones(served, prompts, hf, name: str) -> None:
    choices = sorted(served[name].choices, key=lambda choice: choice.index)
    assert len(choices) == PROMPTS
    assert [choice.prompt_token_ids for choice in choices] == prompts
    modulation = modulations(hf)[name]
    same = [hf_tokens(hf, ids, modulation) == choice.token_ids for ids, choice in zip(prompts, choices, strict=True)]
    assert all(same), [i for i, s in enumerate(same) if not s]


def test_the_xargs_reach_the_processor(served) -> None:
    tokens = {name: [c.token_ids for c in sorted(out.choices, key=lambda c: c.index)] for name, out in served.items()}
    assert tokens["sigma"] != tokens["clean"]
    assert tokens["focus"] != tokens["clean"]


@pytest.mark.parametrize(
    ("xargs", "message"),
    [
        ({"aimod_sigma": "high"}, "must be a number"),
        ({"aimod_sgima": 1.0}, "unknown extra_args"),
        ({"aimod_sigma": 1.0, "aimod_focus_ids": [7]}, "one std per id"),
    ],
)
def test_malformed_xargs_get_400_and_the_server_keeps_serving(client, model, prompts, xargs, message) -> None:
    with pytest.raises(openai.BadRequestError, match=message) as refused:
        client.completions.create(
            model=model, prompt=prompts[0], max_tokens=2, temperature=0.0, extra_body={"vllm_xargs": xargs}
        )
    assert refused.value.status_code == 400
    after = complete(client, model, prompts[:1], Modulation(sigma=1.0), max_tokens=2)
    assert len(after.choices[0].token_ids) == 2


def test_returned_logprobs_are_the_modulated_ones(client, model, prompts, hf) -> None:
    ids, modulation, steps = prompts[0], Modulation(sigma=1.0), 4
    clean = complete(client, model, [ids], None, max_tokens=steps, logprobs=1).choices[0]
    noisy = complete(client, model, [ids], modulation, max_tokens=steps, logprobs=1).choices[0]
    assert clean.logprobs is not None
    assert noisy.logprobs is not None
    assert noisy.logprobs.token_logprobs[0] != clean.logprobs.token_logprobs[0]
    # the processed logprobs: log-softmax of the HF processor's scores at the chosen tokens
    out = hf_greedy(hf, ids, modulation, steps)
    chosen = out.sequences[0, len(ids) :]
    assert chosen.tolist() == noisy.token_ids
    expected = [float(torch.log_softmax(score[0], -1)[token]) for score, token in zip(out.scores, chosen, strict=True)]
    assert noisy.logprobs.token_logprobs == pytest.approx(expected, abs=2e-3)


def test_the_secret_appears_in_nothing_the_server_printed(server, served) -> None:
    printed = server["log"].read_text(encoding="utf-8", errors="replace")
    assert "aimod.vllm:AimodLogitsProcessor" in printed  # the server did log, with aimod's processor loaded
    assert SECRET not in printed
