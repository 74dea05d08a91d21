"""Speed and accuracy of aimod.theory.agreement_curve on ImageNet-size logits.

Goal (issue): the agreement curve of 10,000 samples x 1,000 classes over 101 utility sigmas in at most 10 s
on 2 CPU cores, exact to about 1e-4 per sample.

The logits come from a seeded stand-in for a trained 1000-class classifier: 100 superclasses of 10 similar
classes (unit class embeddings around shared centres), features drawn around the true class's embedding,
logits = 40 x cosine similarity: 75 % top-1 accuracy, mean softmax confidence 0.66, top logit about 15,
logit std 3.7, with most confusions between siblings.
Sigmas span the clean model to near chance. The accuracy check compares the default (fast, compressed,
float32) path with the general float64 composite quadrature over all classes one by one (12-node
Gauss-Legendre panels graded around the top logit, no compression), an independent method, on a subset of
samples and sigmas.

Run: python benchmarks/bench_theory.py [--samples 10000] [--classes 1000] [--sigmas 101] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aimod.theory import agreement_curve
from aimod.theory._engine import integrate


def trained_like_logits(samples: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` float32 and labels ``(N,)`` of a seeded stand-in for a trained classifier."""
    gen = torch.Generator().manual_seed(seed)
    dim, family = 128, 10
    centres = torch.randn(max(1, classes // family), dim, generator=gen)
    embed = centres.repeat_interleave(family, 0)[:classes]
    embed = embed + 0.8 * torch.randn(classes, dim, generator=gen)
    embed = embed / embed.norm(dim=1, keepdim=True)
    labels = torch.randint(classes, (samples,), generator=gen)
    features = embed[labels] + 0.23 * torch.randn(samples, dim, generator=gen)
    features = features / features.norm(dim=1, keepdim=True)
    return 40.0 * features @ embed.T, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--sigmas", type=int, default=101)
    parser.add_argument("--max-sigma", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    parser.add_argument("--check-samples", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=4, help="check every n-th sigma")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    logits, labels = trained_like_logits(args.samples, args.classes)
    sigmas = torch.linspace(0.0, args.max_sigma, args.sigmas)
    top2 = logits.topk(2, dim=1).values
    print(
        f"logits [{args.samples}, {args.classes}] float32: clean top-1 accuracy "
        f"{(logits.argmax(1) == labels).float().mean():.3f}, median top-1 margin "
        f"{(top2[:, 0] - top2[:, 1]).median():.2f}, logit std {logits.std():.2f}; "
        f"{args.sigmas} sigmas in [0, {args.max_sigma:g}]; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )

    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        curve = agreement_curve(logits, sigmas)  # (S, N)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(
        f"agreement_curve: median wall {statistics.median(times):.2f} s over {args.repeats} runs "
        f"({', '.join(f'{t:.2f}' for t in times)}), median CPU {statistics.median(cpu):.2f} s (goal <= 10 s wall)"
    )
    mean = curve.mean(1)
    shown = [i for i in range(0, args.sigmas, max(1, args.sigmas // 10))]
    print("mean agreement: " + ", ".join(f"sigma {sigmas[i]:.1f}: {mean[i]:.4f}" for i in shown))

    rows = slice(0, args.check_samples)
    z = logits[rows].double()
    clean = z.argmax(1)
    checked = [i for i in range(0, args.sigmas, args.check_every) if sigmas[i] > 0]
    start = time.perf_counter()
    reference = torch.stack([integrate(z, float(sigmas[i]), [], [], clean, compress_plain=False) for i in checked])
    elapsed = time.perf_counter() - start
    error = (curve[checked][:, rows].double() - reference).abs()
    print(
        f"error vs float64 composite reference on {args.check_samples} samples x {len(checked)} sigmas "
        f"({elapsed:.1f} s): max {error.max():.2e}, mean {error.mean():.2e}, "
        f"max on the mean curve {(curve[checked][:, rows].double().mean(1) - reference.mean(1)).abs().max():.2e}"
    )


if __name__ == "__main__":
    main()
