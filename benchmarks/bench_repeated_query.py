"""The repeated-query attack on a tier, and what content-keyed noise does to it.

A client at a tier calibrated to 0.5 agreement (resnet-fashion; sigma from the theory on the calibration
inputs, as `aimod calibrate` finds it) sends each of 200 Fashion-MNIST test images 101 times and keeps the
majority answer. Reported: the agreement of that majority with the clean model's decision

  (a) against aimod (keyed noise: the same image always gets the same noise),
  (b) against fresh noise per query (the published code: SeededNoise without keys),
  (c) against aimod with near-duplicate queries (each query's image with a small random pixel change), with the
      noise keyed on the exact pixels (`keying = "exact"`) and on the coarse fingerprint of the clean logits
      (`keying = "fingerprint"`, the default) at several quantisation steps,

with the mean number of distinct keys an image got over its 101 queries, and what honest users see: the
agreement of a single query over the 200 images (the theory predicts it) and how often two different test
images share a fingerprint (so share noise). The answers come from the server's own functions
(aimod.content_keys, aimod.modulate_logits with KeyedNoise), checked against VisionService.run on a sample.

Run: python benchmarks/bench_repeated_query.py [--inputs 200] [--queries 101]
"""

from __future__ import annotations

import argparse
import time

import torch

from aimod import KeyedNoise, Modulation, SeededNoise, modulate_logits, theory
from aimod.calibrate.inputs import logit_rows
from aimod.catalog import load
from aimod.content_keys import exact_keys, fingerprint_keys
from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.eval.attack import majority_vote, perturb_pixels
from aimod.server.config import ServerSettings
from aimod.server.vision import VisionRow, VisionService

SECRET = "benchmark-secret-0123456789"
PERTURBATIONS = {
    "4 pixels +-1": ("pixels", 4, 1),
    "all pixels, noise std 2": ("gauss", 4, 2.0),
    "all pixels, noise std 8": ("gauss", 4, 8.0),
}
STEPS = (0.25, 0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--queries", type=int, default=101)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaded = load("resnet-fashion")
    calibration = logit_rows(loaded, "calibration", None).logits
    sigma = theory.sigma_for(calibration, 0.5)
    modulation = Modulation(sigma=sigma)
    images, _ = load_fashion_mnist("test")
    images = images[: args.inputs]
    classes = loaded.num_classes

    def logits_of(batch: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(batch), 1000):
            out.append(loaded.logits(loaded.preprocess(batch[i : i + 1000, None])))
        return torch.cat(out)

    clean_logits = logits_of(images)
    clean = clean_logits.argmax(1)
    noise = KeyedNoise(SECRET)
    print(
        f"resnet-fashion, tier at 0.5 agreement: sigma = {sigma:.4f} (theory on {len(calibration)} calibration inputs)"
    )
    print(f"{args.inputs} test images x {args.queries} queries; agreement of the majority answer with the clean model")
    print()

    # (a) aimod: the same image, the same key, the same answer every time
    single = {}
    for keying in ("exact", "fingerprint"):
        keys = exact_keys([im[None] for im in images]) if keying == "exact" else fingerprint_keys(clean_logits, 0.5)
        z = modulate_logits(clean_logits, modulation, noise=noise, keys=keys)
        single[keying] = z.argmax(1)
    repeated = single["fingerprint"][:, None].expand(-1, args.queries)
    a = (majority_vote(repeated, classes) == clean).float().mean().item()
    # (b) fresh noise per query
    fresh = SeededNoise(0)
    draws = torch.stack(
        [modulate_logits(clean_logits, modulation, noise=fresh).argmax(1) for _ in range(args.queries)], 1
    )
    b = (majority_vote(draws, classes) == clean).float().mean().item()
    print("| attack | majority agreement % | distinct keys per image |")
    print("|---|---|---|")
    print(
        f"| none (one query, honest user), fingerprint keying | {100 * (single['fingerprint'] == clean).float().mean():.1f} | 1 |"
    )
    print(
        f"| none (one query, honest user), exact keying | {100 * (single['exact'] == clean).float().mean():.1f} | 1 |"
    )
    print(f"| (a) same image x {args.queries}, aimod | {100 * a:.1f} | 1 |")
    print(f"| (b) same image x {args.queries}, fresh noise per query | {100 * b:.1f} | {args.queries} |")

    # (c) near-duplicates
    gen = torch.Generator().manual_seed(0)
    for name, (kind, count, size) in PERTURBATIONS.items():
        copies = torch.stack(
            [perturb_pixels(images, kind, size, gen, count=count) for _ in range(args.queries)], 1
        )  # (N, Q, H, W)
        flat = copies.reshape(-1, *images.shape[1:])
        logits = logits_of(flat)
        rows = {"exact": exact_keys([im[None] for im in flat])}
        for step in STEPS:
            rows[f"fingerprint, step {step:g}"] = fingerprint_keys(logits, step)
        for label, keys in rows.items():
            decisions = modulate_logits(logits, modulation, noise=noise, keys=keys).argmax(1).view(len(images), -1)
            agree = (majority_vote(decisions, classes) == clean).float().mean().item()
            distinct = torch.tensor([len(set(k.tolist())) for k in keys.view(len(images), -1)]).float().mean().item()
            print(f"| (c) {name}, keying {label} | {100 * agree:.1f} | {distinct:.1f} |")
        change = (logits - clean_logits.repeat_interleave(args.queries, 0)).abs().amax(1).median().item()
        print(f"|  (median largest logit change from the perturbation: {change:.4f}) | | |")

    # honest users: the theory, and inputs that share noise
    predicted = theory.agreement(clean_logits, modulation).mean().item()
    all_images, _ = load_fashion_mnist("test")
    all_logits = logits_of(all_images)
    print()
    print(f"Theory's expected single-query agreement on these {args.inputs} images: {100 * predicted:.1f} %")
    for step in STEPS:
        keys = fingerprint_keys(all_logits, step)
        shared = (torch.unique(keys, return_counts=True)[1] > 1).sum().item()
        share = torch.isin(
            keys, torch.unique(keys, return_counts=True)[0][torch.unique(keys, return_counts=True)[1] > 1]
        )
        z = modulate_logits(all_logits, modulation, noise=noise, keys=keys)
        agree = (z.argmax(1) == all_logits.argmax(1)).float().mean().item()
        print(
            f"fingerprint step {step:g}: of the {len(all_images)} test images, {int(share.sum())} share their key with "
            f"another ({shared} shared keys); single-query agreement {100 * agree:.2f} % "
            f"(theory {100 * theory.agreement(all_logits, modulation).mean().item():.2f} %)"
        )

    # the numbers above come from the server's own path
    service = VisionService(loaded, noise, ServerSettings(keying="fingerprint", fingerprint_step=0.5, max_batch=32))
    sample = [VisionRow(im[None], modulation, "classify", 1) for im in images[:64]]
    served = torch.tensor([r["labels"][0]["class_id"] for r in service.run(sample)])  # type: ignore[index]
    same = (served == single["fingerprint"][:64]).float().mean().item()
    print(f"\nVisionService.run agrees with the benchmark's decisions on {100 * same:.0f} % of 64 sampled rows.")
    print(f"Done in {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
