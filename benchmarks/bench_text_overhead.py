"""Overhead of AimLogitsProcessor in end-to-end greedy generation on smollm2-135m.

Batch 8, 64 new tokens, the same prompts with and without the processor (keyed noise, sigma 1), timed
round-robin in one run; medians. Goal (issue 4): at most 3 % added time.

Run: python benchmarks/bench_text_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aimod import KeyedNoise, Modulation
from aimod.text import AimLogitsProcessor
from aimod.text.models import load_causal_lm

PROMPTS = [
    "What is the capital of France?",
    "Name three colours.",
    "What is 7 + 5?",
    "Write a haiku about rain.",
    "What is the chemical symbol for gold?",
    "Give the opposite of 'cold'.",
    "What is the plural of 'mouse'?",
    "Who wrote Hamlet?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    model, tokenizer = load_causal_lm("smollm2-135m")
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in PROMPTS
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def run(with_processor: bool) -> float:
        processors = (
            [
                AimLogitsProcessor(
                    Modulation(sigma=1.0), noise=KeyedNoise("bench secret"), pad_token_id=tokenizer.pad_token_id
                )
            ]
            if with_processor
            else []
        )
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(
                **batch,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                logits_processor=processors,
                pad_token_id=tokenizer.pad_token_id,
            )
        return time.perf_counter() - start

    run(False), run(True)  # warm-up
    plain, modulated = [], []
    for _ in range(args.repeats):
        plain.append(run(False))
        modulated.append(run(True))
    p, m = statistics.median(plain), statistics.median(modulated)
    print(
        f"smollm2-135m, batch {len(PROMPTS)}, {args.new_tokens} new tokens, greedy, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(
        f"without processor {p:.2f} s, with AimLogitsProcessor (keyed, sigma 1) {m:.2f} s: "
        f"overhead {100 * (m / p - 1):+.1f} % (goal <= 3 %)"
    )


if __name__ == "__main__":
    main()
