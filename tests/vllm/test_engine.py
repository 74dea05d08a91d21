"""aimod's processor inside the real vLLM engine: the HF path's completions, keyed, in any batch, logprobs modulated."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from aimod import KeyedNoise, Modulation
from aimod.data.facts import fact_items, spread
from aimod.text.models import from_pretrained, smollm2_folder
from aimod.text.processor import AimLogitsProcessor
from aimod.vllm import extra_args
from tests.vllm.conftest import SECRET

pytestmark = pytest.mark.slow
TOKENS = 12
PROMPTS = 8


@pytest.fixture(scope="module")
def hf() -> tuple[Any, Any]:
    return from_pretrained(str(smollm2_folder()))


@pytest.fixture(scope="module")
def cases(hf: tuple[Any, Any]) -> list[dict[str, Any]]:
    _, tokenizer = hf
    stems = [item.stem for item in spread(fact_items(), PROMPTS)]
    paris = tokenizer.encode(" Paris", add_special_tokens=False)[0]
    modulations = [None, Modulation(sigma=1.0), Modulation(sigma=2.5, focus={paris: 4.0})]
    out = []
    for stem in stems:
        ids = tokenizer.encode(stem)
        for modulation in modulations:
            case = {"ids": ids, "max_tokens": TOKENS, "modulation": modulation}
            case["extra_args"] = None if modulation is None else extra_args(modulation)
            out.append(case)
    # the same prompt with logprobs, clean and at a tier
    out.append({"ids": out[0]["ids"], "max_tokens": 4, "modulation": None, "extra_args": None, "logprobs": 1})
    out.append({"ids": out[0]["ids"], "max_tokens": 4, "modulation": Modulation(sigma=1.0),
                "extra_args": extra_args(Modulation(sigma=1.0)), "logprobs": 1})  # fmt: skip
    return out


def spec(cases: list[dict[str, Any]], alone: bool) -> dict[str, Any]:
    return {"cases": [{k: v for k, v in c.items() if k != "modulation"} for c in cases], "alone": alone}


@pytest.fixture(scope="module")
def first(run_engine, cases) -> tuple[dict[str, Any], str]:
    return run_engine(spec(cases, alone=True))


def hf_tokens(hf: tuple[Any, Any], case: dict[str, Any]) -> list[int]:
    model, tokenizer = hf
    processor = AimLogitsProcessor(case["modulation"] or Modulation(), noise=KeyedNoise(SECRET))
    with torch.no_grad():
        out = model.generate(
            torch.tensor([case["ids"]]), attention_mask=torch.ones(1, len(case["ids"]), dtype=torch.int64),
            max_new_tokens=case["max_tokens"], do_sample=False, logits_processor=[processor],
            pad_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
    tokens = out[0, len(case["ids"]) :].tolist()
    eos = tokenizer.eos_token_id
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def test_completions_equal_the_hf_engines_at_every_tier(first, cases, hf) -> None:
    results, _ = first
    compared = [(case, got) for case, got in zip(cases, results["batch"], strict=True) if "logprobs" not in case]
    same = [hf_tokens(hf, case) == got["tokens"] for case, got in compared]
    assert len(same) == 3 * PROMPTS
    assert all(same), [i for i, s in enumerate(same) if not s]


def test_same_prompt_same_key_same_completion_alone_and_in_a_mixed_batch(first) -> None:
    results, _ = first
    assert [r["tokens"] for r in results["batch"]] == [r["tokens"] for r in results["alone"]]
    assert len(results["batch"]) == 3 * PROMPTS + 2


def test_same_completion_after_an_engine_restart(first, run_engine, cases) -> None:
    again, _ = run_engine(spec(cases[::2], alone=False))  # another batch, in a new engine
    assert [r["tokens"] for r in again["batch"]] == [r["tokens"] for r in first[0]["batch"][::2]]


def test_a_tiered_requests_logprobs_are_the_modulated_ones(first) -> None:
    results, _ = first
    clean, tiered = results["batch"][-2], results["batch"][-1]
    assert clean["logprobs"] is not None
    assert tiered["logprobs"] is not None
    assert tiered["logprobs"][0] != clean["logprobs"][0]  # processed after the noise, not the raw model's
    assert all(lp <= 0 for lp in tiered["logprobs"])


def test_the_secret_appears_in_no_line_the_engine_printed(first) -> None:
    _, printed = first
    assert "Loading" in printed or "vLLM" in printed or "INFO" in printed  # the engine did log
    assert SECRET not in printed
