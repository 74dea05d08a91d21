"""A 101-point sigma sweep with 5 seeds on the 10,000-image Fashion-MNIST test set: cached logits vs re-running.

The published code re-ran the model for every sigma (and would for every seed): 505 passes over the test set.
aimod runs the model once and modulates the cached logits. Both are measured in this run; the slow path is
timed on `--slow-passes` full passes and scaled to 505 (said in the output).

Run: python benchmarks/bench_sweep.py [--slow-passes 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aimod import Modulation, SeededNoise, modulate_logits
from aimod.catalog import load
from aimod.eval import cache_logits, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-passes", type=int, default=2)
    parser.add_argument("--points", type=int, default=101)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    loaded = load("resnet-fashion")
    data = loaded.inputs("evaluation")
    images = data.images
    assert images is not None
    sigmas = torch.linspace(0, 20, args.points).tolist()
    runs = args.points * args.seeds

    # slow path: one full model pass + noise + metrics per (sigma, seed), as the published code did
    slow = []
    for i in range(args.slow_passes):
        start = time.perf_counter()
        with torch.no_grad():
            logits = torch.cat([loaded.model(images[j : j + 256]) for j in range(0, len(images), 256)])
        noisy = modulate_logits(logits, Modulation(sigma=sigmas[i % len(sigmas)]), noise=SeededNoise(i))
        float((noisy.argmax(1) == data.labels).float().mean())
        slow.append(time.perf_counter() - start)
    per_pass = statistics.median(slow)

    start = time.perf_counter()
    cached = cache_logits(loaded.logits, images, data.labels, loaded.id2label)
    cache_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sweep(cached, sigmas, seeds=args.seeds, predict=False)
    sweep_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sweep(cached, sigmas, seeds=1, predict=True)
    theory_seconds = time.perf_counter() - start - sweep_seconds / args.seeds

    fast = cache_seconds + sweep_seconds
    print(
        f"resnet-fashion on {len(images)} test images, {args.points} sigmas x {args.seeds} seeds = {runs} "
        f"points, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"re-running the model per point: {per_pass:.2f} s per pass (median of {args.slow_passes} passes), "
        f"scaled to {runs} passes: {per_pass * runs:.0f} s"
    )
    print(f"aimod cached: one model pass {cache_seconds:.2f} s + sweep {sweep_seconds:.2f} s = {fast:.2f} s")
    print(f"speed-up: {per_pass * runs / fast:.0f}x (goal >= 50x)")
    print(f"theory predictions for all {args.points} sigmas add about {max(theory_seconds, 0):.2f} s")


if __name__ == "__main__":
    main()
