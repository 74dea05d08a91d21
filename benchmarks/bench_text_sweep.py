"""A σ sweep on smollm2-135m as one batched grid vs S separate ``generate`` runs.

S sigma values x 8 prompts, 64 new tokens each (greedy, keyed noise), timed round-robin in one run; medians:

* separate: S calls of :func:`aimod.text.generate`, one per sigma (batch 8);
* grid: one :func:`aimod.text.generate_grid` call (rows = 8 prompts x S sigmas, each prompt's prefill shared).

Both give the same completions (checked here). Goal (issue 4): the grid at least 3x faster.

Run: python benchmarks/bench_text_sweep.py [--sigmas 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aimod import KeyedNoise, Modulation
from aimod.catalog import load
from aimod.text import generate, generate_grid
from bench_text_overhead import PROMPTS  # the same 8 prompts as the overhead benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    smollm2 = load("smollm2-135m")
    model, tokenizer = smollm2.model, smollm2.tokenizer
    mods = [Modulation(sigma=0.5 * i) for i in range(args.sigmas)]
    noise = KeyedNoise("bench secret")
    fixed = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}

    def separate() -> list[list[str]]:
        return [generate(model, tokenizer, PROMPTS, m, noise=noise, batch_size=len(PROMPTS), **fixed) for m in mods]

    def grid() -> list[list[str]]:
        return generate_grid(model, tokenizer, PROMPTS, mods, noise=noise, batch_size=len(PROMPTS), **fixed).texts

    same = separate() == grid()  # also the warm-up
    times: dict[str, list[float]] = {"separate": [], "grid": []}
    for _ in range(args.repeats):
        for name, run in (("separate", separate), ("grid", grid)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    s, g = statistics.median(times["separate"]), statistics.median(times["grid"])
    print(
        f"smollm2-135m, {args.sigmas} sigmas x {len(PROMPTS)} prompts, {args.new_tokens} new tokens, greedy, keyed; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"identical completions: {same}")
    print(f"{args.sigmas} separate runs {s:.2f} s, one grid {g:.2f} s: speed-up {s / g:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
