"""Speed of modulate_logits on Llama-3-size logits, as ratios to plain Gaussian noise in the same run.

Goals (issue 2): keyed noise at least 0.5x the plain speed; per-row mixed modulations at least 0.8x the
single-modulation speed. Variants are timed round-robin so that machine noise hits them alike; medians.

Run: python benchmarks/bench_modulate.py [--rows 64] [--vocab 131072] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import aimod
from aimod import KeyedNoise, Modulation, ModulationBatch, SeededNoise, modulate_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=131072)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(args.rows, args.vocab, generator=gen)
    keys = aimod.digest(torch.arange(args.rows)[:, None])
    sigma = 2.0
    utility = Modulation(sigma=sigma)
    focus = Modulation(focus={i: (2.0 if i % 2 else -2.0) for i in range(0, 1000, 100)})
    both = Modulation(sigma=sigma, focus=dict(focus.focus))
    # 64 tenants: distinct sigmas and focus sets, one per row
    mixed = [
        Modulation(sigma=0.5 + 0.05 * b, focus={(37 * b + i) % args.vocab: 1.0 + i for i in range(b % 4)})
        for b in range(args.rows)
    ]
    mixed_batch = ModulationBatch.build(mixed, args.rows, args.vocab)
    keyed, seeded = KeyedNoise("benchmark secret, not a real one"), SeededNoise(0)

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "plain  z + sigma*randn_like(z)": lambda: logits + sigma * torch.randn_like(logits),
        "utility seeded": lambda: modulate_logits(logits, utility, noise=seeded),
        "utility keyed": lambda: modulate_logits(logits, utility, noise=keyed, keys=keys),
        "focus keyed (10 classes)": lambda: modulate_logits(logits, focus, noise=keyed, keys=keys),
        "utility+focus keyed (single)": lambda: modulate_logits(logits, both, noise=keyed, keys=keys),
        "per-row mixed keyed (list of 64)": lambda: modulate_logits(logits, mixed, noise=keyed, keys=keys),
        "per-row mixed keyed (ModulationBatch)": lambda: modulate_logits(logits, mixed_batch, noise=keyed, keys=keys),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    plain = med["plain  z + sigma*randn_like(z)"]
    print(
        f"modulate_logits on [{args.rows}, {args.vocab}] float32, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'variant':40s} {'median ms':>10s} {'speed vs plain':>15s}")
    for name, t in med.items():
        print(f"{name:40s} {t * 1e3:10.1f} {plain / t:14.2f}x")
    single = med["utility+focus keyed (single)"]
    print(f"keyed utility speed vs plain: {plain / med['utility keyed']:.2f}x (goal >= 0.5x)")
    mixed_list = med["per-row mixed keyed (list of 64)"]
    print(f"per-row mixed (list) vs single modulation: {single / mixed_list:.2f}x (goal >= 0.8x)")
    print(f"per-row mixed (ModulationBatch) vs single: {single / med['per-row mixed keyed (ModulationBatch)']:.2f}x")


if __name__ == "__main__":
    main()
