"""Overhead of AimLogitsProcessor in end-to-end greedy generation on smollm2-135m.

Batch 8, 64 new tokens, the same prompts without the processor and with it under each noise source at sigma 1,
timed round-robin in one run; medians. SeededNoise is one keyed normal per logit (what KeyedNoise cost before
tiers were nested); KeyedNoise draws the nested path (18 normals per logit); FieldNoise (the server's default
for text: clip 5) two matrix products per step. Goal (issue 4): at most 3 % added time.

Run: python benchmarks/bench_text_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aimod import FieldNoise, KeyedNoise, Modulation, NoiseSource, SeededNoise
from aimod.catalog import load
from aimod.text import AimLogitsProcessor

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
    smollm2 = load("smollm2-135m")
    model, tokenizer = smollm2.model, smollm2.tokenizer
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in PROMPTS
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    sources: dict[str, NoiseSource | None] = {
        "no processor": None,
        "SeededNoise (one normal per logit)": SeededNoise(0),
        "KeyedNoise (nested)": KeyedNoise("bench secret"),
        "FieldNoise (256 features, clip 5)": FieldNoise("bench secret", clip=5.0),
        "FieldNoise (64 features, clip 5)": FieldNoise("bench secret", clip=5.0, features=64),
    }

    def run(noise: NoiseSource | None) -> float:
        processors = (
            [AimLogitsProcessor(Modulation(sigma=1.0), noise=noise, pad_token_id=tokenizer.pad_token_id)]
            if noise is not None
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

    for noise in sources.values():  # warm-up (and the fields' amplitudes)
        run(noise)
    times: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(args.repeats):
        for name, noise in sources.items():
            times[name].append(run(noise))
    print(
        f"smollm2-135m, batch {len(PROMPTS)}, {args.new_tokens} new tokens, greedy, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    plain = statistics.median(times["no processor"])
    for name, values in times.items():
        m = statistics.median(values)
        print(f"{name}: {m:.2f} s, overhead {100 * (m / plain - 1):+.1f} % (goal <= 3 %)")


if __name__ == "__main__":
    main()
