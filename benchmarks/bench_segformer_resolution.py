"""Where to add the noise for SegFormer: at its 1/4-resolution logits, or after upsampling to the labels?

Prints, for a few utility sigmas, the per-pixel agreement with the clean segmentation when the noise is added
(a) after bilinear upsampling to the label size (aimod's default, resolution="labels") and (b) at the logit
resolution before upsampling (resolution="logits"), next to the theory's per-pixel prediction, which assumes
i.i.d. noise of std sigma on every released pixel. Seeded; 3 seeds per point.

Run: python benchmarks/bench_segformer_resolution.py [--scenes 40]
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from aimod import Modulation, SeededNoise, modulate_logits, theory
from aimod.catalog import load
from aimod.data.scenes import make_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=40)
    args = parser.parse_args()
    loaded = load("segformer-scenes")
    images, _ = make_scenes(args.scenes, split="test")
    low = loaded.logits(loaded.preprocess(images))  # (N, C, 32, 32)
    size = tuple(images.shape[-2:])
    up = F.interpolate(low, size=size, mode="bilinear", align_corners=False)  # (N, C, 128, 128)
    clean = up.argmax(1)
    pixels = up.movedim(1, -1).reshape(-1, up.shape[1])
    pick = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))[:40_000]
    print(f"segformer-scenes, {args.scenes} held-out scenes, logits {tuple(low.shape[-2:])} -> labels {size}")
    print(f"{'sigma':>6} {'labels (default) %':>19} {'logits %':>9} {'theory %':>9}")
    for sigma in (0.5, 1.0, 2.0, 4.0, 8.0):
        m = Modulation(sigma=sigma)
        at_labels, at_logits = [], []
        for seed in range(3):
            noisy = modulate_logits(up, m, dim=1, noise=SeededNoise(seed)).argmax(1)
            at_labels.append(float((noisy == clean).float().mean()))
            noisy_low = modulate_logits(low, m, dim=1, noise=SeededNoise(seed))
            resized = F.interpolate(noisy_low, size=size, mode="bilinear", align_corners=False).argmax(1)
            at_logits.append(float((resized == clean).float().mean()))
        predicted = float(theory.agreement(pixels[pick].double(), m).mean())
        print(f"{sigma:6g} {100 * sum(at_labels) / 3:19.1f} {100 * sum(at_logits) / 3:9.1f} {100 * predicted:9.1f}")


if __name__ == "__main__":
    main()
