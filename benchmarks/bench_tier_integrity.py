"""Tier integrity: what a tenant reaches by combining tiers and sending near-duplicates, against a real server.

resnet-fashion with tiers calibrated (theory, 5,000 calibration images) to 0.9 / 0.7 / 0.5 agreement and a
premium tier (σ 0). For each server keying, a real `aimod serve` process on loopback (started and stopped by
this script) answers, for each held-out test image, ``--variants`` copies of each family of
aimod.eval.attack.FAMILIES (the same image, pixel changes, re-encodings, pixel noise, shifts/crops/pads, JPEG), each
sent as its own request with a key of each tier. Printed per family and tier: the agreement with the premium
answer of the majority of the returned top-1 labels and of the soft vote (the returned probabilities summed;
the servers here release probabilities, the most an owner can give away), then the two-tier attack (one query
of each image at two tiers, log-probabilities extrapolated to σ = 0, or the better tier alone).

Server keyings (each selectable in server.toml; by default the real servers run `before` and `field`, and all
of them run in process on the same copies, where the field's answers are checked equal to its real server's):
  before  - the keying of aimod before nested tiers: the fingerprint key and one ε scaled by each tier's σ
            (served by this script's own launcher, which swaps that noise into the real server);
  exact   - keyed normals on the exact pixels, nested tiers;
  fingerprint - keyed normals on the quantised logit fingerprint, nested tiers;
  field   - (the default) the smooth keyed field of the clean logits, ℓ = 3, nested tiers.
In-process candidates (not server settings; computed with the server's own functions on the same variants):
field at other length scales and a tenant-scoped memory (a query whose clean logits lie within r of one the
tenant asked before gets that query's answer).

Then, for every candidate: single-query agreement on 5,000 held-out images for 16 secrets against the theory
(the spread is what honest users pay for shared noise; for the field also with each secret's tiers calibrated
under its own field, as `aimod calibrate --server-config` does), how much distinct images share noise, the field's
vote bound (one query at σ·√c*, c* = 1 / (1ᵀ Σ⁻¹ 1) of the variants' feature Gram matrix) against the measured
votes, and the cost per request in process (median of repeats) against the `before` path.

The text part does the same for smollm2-135m behind real servers (keyings before / exact / field): 20 fact
questions asked in 21 rewordings each (casing, whitespace, punctuation, paraphrases, an irrelevant sentence),
the majority answer against premium's answer to the question as written.

Run: python benchmarks/bench_tier_integrity.py [--images 100] [--variants 51] [--http-variants 21]
     [--keyings before,field] [--parts vision,text] [--quick]   (the full run takes about 40 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from torch import Tensor

from _server import wait_healthy
from aimod import FieldNoise, KeyedNoise, Modulation, modulate_logits, theory
from aimod.eval.attack import FAMILIES, image_variants, majority_vote, soft_vote
from aimod.noise import UTILITY_STREAM, normals
from aimod.server.config import hash_key

SECRET = "bench-tier-integrity-secret-0123456789"
TARGETS = {"t90": 0.9, "t70": 0.7, "t50": 0.5}
KEYS = {tier: f"bench-{tier}-key-0123456789abcdef" for tier in ("premium", *TARGETS)}
SERVER_KEYINGS = ("before", "field")
SCALES = (1.5, 2.0, 3.0, 4.0)
MAX_BATCH = 32
SECRETS = 16
ATTACK_SECRETS = 4


class BeforeNoise(KeyedNoise):
    """aimod's keyed noise before nested tiers: one keyed ε per logit, scaled by each row's σ."""

    def utility(self, clean: Tensor, sigma: Tensor, row_seeds: Tensor) -> Tensor:
        eps = normals(row_seeds, clean.shape[1], clean.shape[2], UTILITY_STREAM)
        return eps.mul_(sigma.to(eps.device)[:, None, None])


# -- the server -------------------------------------------------------------------------------------------


def _serve(config_path: str, before: bool) -> None:
    """The server process: `aimod serve`'s own build and app; `before` swaps in the pre-nesting noise."""
    import uvicorn

    from aimod.server import build, create_app, load_config

    config = load_config(config_path)
    served = build(config, os.environ["AIMOD_SECRET"])
    if before:
        service = served.vision if served.vision is not None else served.text
        service.noise = BeforeNoise(os.environ["AIMOD_SECRET"])  # type: ignore[union-attr]
    uvicorn.run(create_app(served), host="127.0.0.1", port=config.server.port, log_config=None, access_log=False)


def _server_keying(keying: str, model: str) -> str:
    if keying == "before":  # the fingerprint (images) or the exact prefix (text), with BeforeNoise swapped in
        return "exact" if model == "smollm2-135m" else "fingerprint"
    return keying


@contextmanager
def server(
    keying: str, sigmas: dict[str, float], release: str = "probabilities", model: str = "resnet-fashion"
) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="aimod-integrity-"))
    tenants = "".join(
        f'[[tenants]]\nname = "{tier}-tenant"\ntier = "{tier}"\nkey_sha256 = "{hash_key(key)}"\n'
        for tier, key in KEYS.items()
    )
    table = ", ".join(f"{name} = {sigma!r}" for name, sigma in sigmas.items())
    (folder / "server.toml").write_text(
        f'[model]\nname = "{model}"\n[tiers]\nsigma = {{ {table} }}\n{tenants}'
        f"[server]\nport = {port}\nmax_batch = {MAX_BATCH}\nbatch_wait_ms = 2\n"
        f'keying = "{_server_keying(keying, model)}"\nrelease = "{release}"\n'
    )
    args = [sys.executable, __file__, "--serve", str(folder / "server.toml")] + (
        ["--before"] if keying == "before" else []
    )
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(args, env={**os.environ, "AIMOD_SECRET": SECRET, "OMP_NUM_THREADS": "1"},
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base
    finally:
        if process.poll() is not None:
            print(f"the {keying} server exited with {process.returncode}; its log: {folder / 'server.log'}")
        process.terminate()
        process.wait(60)
        log.close()


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST with up to 3 tries on a dropped connection (a retried query gets the same keyed answer)."""
    for attempt in range(3):
        try:
            response = await client.post(path, json=body)
            response.raise_for_status()
            return response
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def ask(base: str, tier: str, images: Sequence[bytes], top_k: int = 10) -> list[list[dict[str, Any]]]:
    """The `labels` of one /v1/classify request per image, in order (64 requests in flight)."""

    async def run() -> list[list[dict[str, Any]]]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"Authorization": f"Bearer {KEYS[tier]}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=300) as client:
            gate = asyncio.Semaphore(64)

            async def one(image: bytes) -> list[dict[str, Any]]:
                async with gate:
                    body = {"image": base64.b64encode(image).decode(), "top_k": top_k}
                    response = await _post(client, "/v1/classify", body)
                    return response.json()["labels"]  # type: ignore[no-any-return]

            return await asyncio.gather(*(one(image) for image in images))

    return asyncio.run(run())


def as_tensors(answers: list[list[dict[str, Any]]], classes: int) -> tuple[Tensor, Tensor]:
    """Top-1 ids ``(n,)`` and returned probabilities ``(n, classes)`` (0 where not returned)."""
    top = torch.tensor([a[0]["class_id"] for a in answers])
    probs = torch.zeros(len(answers), classes)
    for i, labels in enumerate(answers):
        for label in labels:
            probs[i, label["class_id"]] = label.get("probability", 0.0)
    return top, probs


# -- the attacks --------------------------------------------------------------------------------------------


def votes(top: Tensor, probs: Tensor, premium: Tensor, shape: tuple[int, int]) -> tuple[float, float]:
    """Agreement with premium of the majority and of the soft vote over each image's copies."""
    n, v = shape
    majority = majority_vote(top.view(n, v), probs.shape[1])
    soft = soft_vote(probs.view(n, v, -1))
    return float((majority == premium).float().mean()), float((soft == premium).float().mean())


def two_tier(probs: dict[str, Tensor], sigmas: dict[str, float], premium: Tensor) -> dict[str, float]:
    """One query per image at two tiers: extrapolate the log-probabilities linearly in σ to σ = 0."""
    out = {}
    for better, worse in (("t90", "t70"), ("t70", "t50"), ("t90", "t50")):
        lo, hi = probs[better].clamp(min=1e-6).log(), probs[worse].clamp(min=1e-6).log()
        s1, s2 = sigmas[better], sigmas[worse]
        guess = lo - s1 * (hi - lo) / (s2 - s1)
        out[f"{better}+{worse}"] = float((guess.argmax(1) == premium).float().mean())
        out[f"{better} alone"] = float((probs[better].argmax(1) == premium).float().mean())
    return out


def decode_all(images: Sequence[bytes], loaded: Any, *, pixels_too: bool = False) -> Any:
    """Clean logits of encoded images through the server's own decoding and fixed-shape batches (and, with
    ``pixels_too``, the decoded pixels)."""
    from aimod.server.config import ServerSettings
    from aimod.server.vision import VisionService

    service = VisionService(loaded, KeyedNoise(SECRET), ServerSettings(max_batch=MAX_BATCH))
    pixels = [service.decode(image) for image in images]
    inputs = [loaded.preprocess(p[None]) for p in pixels]
    chunks = [service._logits(torch.cat(inputs[i : i + MAX_BATCH])) for i in range(0, len(inputs), MAX_BATCH)]
    logits = torch.cat(chunks)
    return (logits, pixels) if pixels_too else logits


def _zeros(z: Tensor) -> Tensor:
    return torch.zeros(len(z), dtype=torch.int64)


def memory_answers(logits: Tensor, sigma: float, radius: float, noise: KeyedNoise) -> Tensor:
    """Top-1 answers of a tenant-scoped memory: a query within `radius` (centred logits) of an earlier one
    gets that one's answer; others are answered with nested fingerprint-keyed noise and remembered."""
    from aimod.content_keys import fingerprint_keys

    centred = logits - logits.mean(1, keepdim=True)
    fresh = modulate_logits(logits, Modulation(sigma=sigma), noise=noise, keys=fingerprint_keys(logits, 0.5)).argmax(1)
    answers = fresh.clone()
    stored: list[int] = []
    for i in range(len(logits)):
        if stored:
            distance = (centred[stored] - centred[i]).norm(dim=1)
            j = int(distance.argmin())
            if float(distance[j]) <= radius:
                answers[i] = answers[stored[j]]
                continue
        stored.append(i)
    return answers


def field_bound(field: FieldNoise, clean: Tensor, variants: Tensor, sigma: float) -> float:
    """Mean over images of the theory's agreement at σ·√c*, c* = 1/(1ᵀ Σ⁻¹ 1) of the copies' features."""
    n, v, c = variants.shape
    phi = field.phi(variants.reshape(-1, c)).view(n, v, -1).double()
    gram = phi @ phi.transpose(1, 2) + 1e-9 * torch.eye(v, dtype=torch.float64)
    ones = torch.ones(n, v, 1, dtype=torch.float64)
    common = 1.0 / (ones.transpose(1, 2) @ torch.linalg.solve(gram, ones))[:, 0, 0]
    scaled = (sigma * common.clamp(0, 1).sqrt()).tolist()
    return float(
        np.mean([float(theory.agreement(clean[i : i + 1], Modulation(sigma=s))[0]) for i, s in enumerate(scaled)])
    )


# -- the report ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--variants", type=int, default=51, help="copies per image and family")
    parser.add_argument("--http-variants", type=int, default=21, help="of those, how many go to the real servers")
    parser.add_argument("--keyings", default=",".join(SERVER_KEYINGS), help="the real servers to attack")
    parser.add_argument("--quick", action="store_true", help="20 images x 11 copies")
    parser.add_argument("--parts", default="vision,segmentation,text", help="any of vision, segmentation, text")
    parser.add_argument("--text-prompts", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--scene-copies", type=int, default=11)
    parser.add_argument("--text-keyings", default="before,exact,field")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.before)
        return
    if args.quick:
        args.images, args.variants, args.http_variants, args.text_prompts = 20, 11, 11, 6
        args.scenes, args.scene_copies = 3, 5
    started = time.perf_counter()
    parts = args.parts.split(",")
    if "vision" in parts:
        vision_part(args)
    if "segmentation" in parts:
        segmentation_part(args.scenes, args.scene_copies)
    if "text" in parts:
        text_part(args.text_prompts, [k for k in args.text_keyings.split(",") if k], max_tokens=12)
    print(f"Done in {time.perf_counter() - started:.0f} s.")


def vision_part(args: argparse.Namespace) -> None:
    from aimod.calibrate.inputs import logit_rows
    from aimod.catalog import load
    from aimod.data.fashion_mnist import load_fashion_mnist
    from aimod.eval.attack import encode_image

    loaded = load("resnet-fashion")
    classes = loaded.num_classes
    calibration = logit_rows(loaded, "calibration", None).logits
    sigmas = {"premium": 0.0, **{tier: theory.sigma_for(calibration, t) for tier, t in TARGETS.items()}}
    pixels, _ = load_fashion_mnist("test")
    originals = [pixels[5000 + i].numpy() for i in range(args.images)]  # held-out images
    n, v = args.images, args.variants
    generator = torch.Generator().manual_seed(0)
    copies = {
        family: [c for image in originals for c in image_variants(image, family, v, generator)] for family in FAMILIES
    }
    pngs = [encode_image(image) for image in originals]
    clean = decode_all(pngs, loaded)
    premium_local = clean.argmax(1)
    print(
        f"resnet-fashion; tiers from the theory on {len(calibration)} calibration images: "
        + ", ".join(f"{t} sigma {s:.4f}" for t, s in sigmas.items() if s > 0)
    )
    print(f"{n} held-out test images x {v} copies per family, each copy its own request; cores: {os.cpu_count()}")
    theory_at = {t: float(theory.agreement(clean, Modulation(sigma=sigmas[t])).mean()) for t in TARGETS}
    print(
        "theory's single-query agreement on these images: "
        + ", ".join(f"{t} {100 * a:.1f} %" for t, a in theory_at.items())
    )

    # ---- the real servers ----
    served_top: dict[tuple[str, str, str], Tensor] = {}
    for keying in [k for k in args.keyings.split(",") if k]:
        began = time.perf_counter()
        sent = 0
        rows: list[str] = []
        with server(keying, sigmas) as base:
            premium, _ = as_tensors(ask(base, "premium", pngs), classes)
            assert torch.equal(premium, premium_local), "premium is not the clean model"
            single_probs: dict[str, Tensor] = {}
            hv = min(args.http_variants, v)
            for family, images in copies.items():
                cells = []
                subset = [images[i * v + j] for i in range(n) for j in range(hv)]
                for tier in TARGETS:
                    top, probs = as_tensors(ask(base, tier, subset), classes)
                    sent += len(subset)
                    served_top[(keying, family, tier)] = top
                    majority, soft = votes(top, probs, premium, (n, hv))
                    cells.append(f"{100 * majority:.0f} / {100 * soft:.0f}")
                    if family == "the same image":
                        single_probs[tier] = probs.view(n, hv, classes)[:, 0]
                rows.append(f"| {family} | " + " | ".join(cells) + " |")
            attack = two_tier(single_probs, sigmas, premium)
        elapsed = time.perf_counter() - began
        print()
        print(
            f"### keying `{keying}` (real server; {sent} requests in {elapsed:.0f} s, {sent / elapsed:.0f} requests/s)"
        )
        print("| what the tenant sends | t90: majority / soft % | t70 | t50 |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        print(
            "two tiers (one query each, log-probabilities extrapolated to sigma 0): "
            + "; ".join(f"{pair} {100 * a:.1f} %" for pair, a in attack.items())
        )

    # ---- in process: every candidate on the same copies ----
    print()
    print("### every candidate, in process (the server's decoding, fixed-shape batches and modulate_logits)")
    decoded = {family: decode_all(images, loaded, pixels_too=True) for family, images in copies.items()}
    variant_logits = {family: logits.view(n, v, classes) for family, (logits, _) in decoded.items()}
    field_default = FieldNoise(SECRET)
    checked = []
    for family in copies:
        for tier in TARGETS:
            if ("field", family, tier) in served_top:
                z = variant_logits[family].reshape(-1, classes)
                local = modulate_logits(z, Modulation(sigma=sigmas[tier]), noise=field_default, keys=_zeros(z))
                served = served_top[("field", family, tier)].view(n, -1)
                local_top = local.argmax(1).view(n, v)[:, : served.shape[1]]
                checked.append(float((local_top == served).float().mean()))
    if checked:
        print(f"in-process field answers equal the real server's on {100 * min(checked):.2f} % of copies (worst cell)")
    from aimod.content_keys import exact_keys, fingerprint_keys

    def keyed(make: Any, how: str) -> Any:
        def decide(secret: str, z: Tensor, family: str, sigma: float) -> tuple[Tensor, Tensor]:
            keys = exact_keys(decoded[family][1]) if how == "exact" else fingerprint_keys(z, 0.5)
            out = modulate_logits(z, Modulation(sigma=sigma), noise=make(secret), keys=keys)
            return out.argmax(1), out.softmax(1)

        return decide

    def memory(radius: float) -> Any:
        def decide(secret: str, z: Tensor, family: str, sigma: float) -> tuple[Tensor, Tensor]:
            top = memory_answers(z, sigma, radius, KeyedNoise(secret))
            return top, torch.nn.functional.one_hot(top, classes).float()

        return decide

    candidates: dict[str, Any] = {
        "before (fingerprint, one eps)": keyed(BeforeNoise, "fingerprint"),
        "exact, nested": keyed(KeyedNoise, "exact"),
        "fingerprint, nested": keyed(KeyedNoise, "fingerprint"),
        **{
            f"field, scale {scale:g}" + (" (default)" if scale == 3.0 else ""): keyed(
                lambda secret, scale=scale: FieldNoise(secret, scale=scale), "fingerprint"
            )
            for scale in SCALES
        },
        "memory, radius 2 (labels only)": memory(2.0),
        "memory, radius 4 (labels only)": memory(4.0),
    }
    short = {family: family.split(",")[0].split(" (")[0] for family in copies}
    print(
        f"majority / soft vote agreement with premium, mean over {ATTACK_SECRETS} secrets; 'single' = one query; "
        "'worst gain' = the largest vote minus single over the families"
    )
    print("| candidate | tier | single | " + " | ".join(short[f] for f in copies) + " | worst gain |")
    print("|---|---|---|" + "---|" * len(copies) + "---|")
    secrets = [f"{SECRET}-attack-{k}" for k in range(ATTACK_SECRETS)]
    measured: dict[tuple[str, str, str], tuple[float, float]] = {}
    for name, decide in candidates.items():
        for tier in TARGETS:
            cells, worst = [], -1.0
            for family in copies:
                results = [
                    votes(*decide(secret, variant_logits[family].reshape(-1, classes), family, sigmas[tier]),
                          premium_local, (n, v))
                    for secret in secrets
                ]  # fmt: skip
                majority = statistics.mean(r[0] for r in results)
                soft = statistics.mean(r[1] for r in results)
                measured[(name, family, tier)] = (majority, soft)
                cells.append(f"{100 * majority:.0f} / {100 * soft:.0f}")
            single = measured[(name, "the same image", tier)][0]
            worst = max(max(measured[(name, f, tier)]) - single for f in copies)
            print(f"| {name} | {tier} | {100 * single:.1f} | " + " | ".join(cells) + f" | {100 * worst:+.1f} |")

    print()
    print(
        f"field (default) vote bound: the theory at sigma*sqrt(c*) against the votes measured above ({ATTACK_SECRETS} secrets)"
    )
    print("| family | t90 bound / majority / soft | t70 | t50 |")
    print("|---|---|---|---|")
    for family in copies:
        cells = []
        for tier in TARGETS:
            majority, soft = measured[("field, scale 3 (default)", family, tier)]
            bound = field_bound(field_default, clean, variant_logits[family], sigmas[tier])
            cells.append(f"{100 * bound:.0f} / {100 * majority:.0f} / {100 * soft:.0f}")
        print(f"| {family} | " + " | ".join(cells) + " |")

    # honest users: 5,000 held-out images, 8 secrets
    held_out = logit_rows(loaded, "held-out", None).logits
    print()
    print(
        f"honest users: single-query agreement on {len(held_out)} held-out images, {SECRETS} secrets (mean ± std) vs theory"
    )
    print("| candidate | t90 | t70 | t50 |")
    print("|---|---|---|---|")

    fp_keys = fingerprint_keys(held_out, 0.5)
    honest = {
        "before (fingerprint, one eps)": lambda s: BeforeNoise(s),
        "fingerprint, nested": lambda s: KeyedNoise(s),
        **{f"field, scale {scale:g}": (lambda s, scale=scale: FieldNoise(s, scale=scale)) for scale in SCALES},
    }
    reference = held_out.argmax(1)
    theory_held = {t: float(theory.agreement(held_out, Modulation(sigma=sigmas[t])).mean()) for t in TARGETS}
    print("| theory | " + " | ".join(f"{100 * theory_held[t]:.2f}" for t in TARGETS) + " |")
    for name, make in honest.items():
        cells = []
        for tier in TARGETS:
            values = []
            for s in range(SECRETS):
                out = modulate_logits(
                    held_out, Modulation(sigma=sigmas[tier]), noise=make(f"{SECRET}-{s}"), keys=fp_keys
                )
                values.append(100 * float((out.argmax(1) == reference).float().mean()))
            cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    from aimod.calibrate import measured_sigma

    cells = []
    for tier, target in TARGETS.items():  # each secret's tiers calibrated under its own field, as --server-config does
        values = []
        for s in range(SECRETS):
            noise = FieldNoise(f"{SECRET}-{s}")
            sigma = measured_sigma(calibration, target, sigmas[tier], noise)
            out = modulate_logits(held_out, Modulation(sigma=sigma), noise=noise, keys=fp_keys)
            values.append(100 * float((out.argmax(1) == reference).float().mean()))
        cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}")
    print(
        "| field, scale 3, tiers calibrated under each secret's field (target 90 / 70 / 50) | "
        + " | ".join(cells)
        + " |"
    )
    cal_reference = calibration.argmax(1)
    for tier in TARGETS:  # why calibrating under the secret works: its scatter is the same on both halves
        pairs = []
        for s in range(SECRETS):
            noise = FieldNoise(f"{SECRET}-{s}")
            m = Modulation(sigma=sigmas[tier])
            on_cal = modulate_logits(calibration, m, noise=noise, keys=_zeros(calibration)).argmax(1) == cal_reference
            on_held = modulate_logits(held_out, m, noise=noise, keys=fp_keys).argmax(1) == reference
            pairs.append((float(on_cal.float().mean()), float(on_held.float().mean())))
        corr = float(torch.corrcoef(torch.tensor(pairs).T)[0, 1])
        print(f"field, scale 3, {tier}: correlation over the secrets of calibration and held-out agreement {corr:.3f}")
    shared = torch.unique(fp_keys, return_counts=True)[1]
    print(
        f"fingerprint: {int(shared[shared > 1].sum())} of {len(held_out)} held-out images share their key with another"
    )
    sample = held_out[:2000]
    phi = field_default.phi(sample).double()
    gram = phi @ phi.T
    off = gram[~torch.eye(len(sample), dtype=torch.bool)]
    same_class = (sample.argmax(1)[:, None] == sample.argmax(1)[None]) & ~torch.eye(len(sample), dtype=torch.bool)
    print(
        f"field (scale 3): noise correlation between distinct held-out images: median {float(off.median()):.3f}, "
        f"99th percentile {float(off.quantile(0.99)):.3f}, share above 0.5 {100 * float((off > 0.5).double().mean()):.2f} %; "
        f"same clean class: median {float(gram[same_class].median()):.3f}, share above 0.5 "
        f"{100 * float((gram[same_class] > 0.5).double().mean()):.2f} %"
    )

    # cost per request, in process: VisionService.run on 32 decoded images
    from aimod.server.config import ServerSettings
    from aimod.server.vision import VisionRow, VisionService

    torch.set_num_threads(1)
    decoded = [VisionService(loaded, KeyedNoise(SECRET), ServerSettings()).decode(image) for image in pngs[:MAX_BATCH]]
    services = {
        "before": VisionService(loaded, BeforeNoise(SECRET), ServerSettings(keying="fingerprint", max_batch=MAX_BATCH)),
        "exact": VisionService(loaded, KeyedNoise(SECRET), ServerSettings(keying="exact", max_batch=MAX_BATCH)),
        "fingerprint": VisionService(
            loaded, KeyedNoise(SECRET), ServerSettings(keying="fingerprint", max_batch=MAX_BATCH)
        ),
        "field": VisionService(loaded, FieldNoise(SECRET), ServerSettings(keying="field", max_batch=MAX_BATCH)),
    }
    rows_in = [VisionRow(p, Modulation(sigma=sigmas["t50"]), "classify", 10) for p in decoded]
    times: dict[str, list[float]] = {name: [] for name in services}
    for _ in range(15):
        for name, service in services.items():
            began = time.perf_counter()
            service.run(rows_in)
            times[name].append(time.perf_counter() - began)
    base = statistics.median(times["before"])
    print()
    print("cost per request in process (VisionService.run, 32 images, 1 thread, median of 15):")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"  {name}: {1000 * m / MAX_BATCH:.3f} ms per request, {m / base:.2f}x before")


# -- language models ------------------------------------------------------------------------------------------

TEXT_SIGMAS = {"premium": 0.0, "t90": 0.125, "t70": 0.591, "t50": 1.385}
"""smollm2-135m's tiers as `aimod demo` calibrates them (token agreement 0.9 / 0.7 / 0.5)."""


def prompt_variants(question: str) -> list[str]:
    """21 ways to ask one question: the question, casing, whitespace, punctuation, paraphrases, additions."""
    bare = question.rstrip("?")
    lower = question[0].lower() + question[1:]
    return [
        question,
        question.lower(),
        question.upper(),
        "  " + question + "  ",
        question.replace(" ", "  "),
        bare,
        bare + "??",
        bare + "!",
        bare + " ?",
        "Please answer: " + question,
        "Quick question: " + lower,
        "I would like to know: " + lower,
        "Can you tell me this? " + question,
        "Tell me, " + lower,
        "Answer briefly. " + question,
        question + " Thanks.",
        question + " Thank you!",
        question + " The weather is nice today.",
        question + " I am asking for a quiz.",
        "Hi! " + question,
        "Hello there. " + question + " Please be short.",
    ]


def answer_key(item: Any, reply: str) -> str:
    """The answer a reply gives: the item's canonical answer when any accepted form appears in it, else the
    reply's first clause (normalised), so that votes count equal answers as equal."""
    import re
    import unicodedata

    def fold(text: str) -> str:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
        return " " + re.sub(r"[^a-z0-9]+", " ", text).strip() + " "

    words = fold(reply)
    if any(fold(alias) in words for alias in item.aliases):
        return str(item.answer)
    from aimod.data.facts import normalise

    return normalise(reply)[:60]


def ask_text(base: str, tier: str, prompts: Sequence[str], max_tokens: int) -> list[str]:
    async def run() -> list[str]:
        headers = {"Authorization": f"Bearer {KEYS[tier]}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as client:
            gate = asyncio.Semaphore(32)

            async def one(prompt: str) -> str:
                async with gate:
                    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens}  # fmt: skip
                    response = await _post(client, "/v1/chat/completions", body)
                    return str(response.json()["choices"][0]["message"]["content"])

            return await asyncio.gather(*(one(prompt) for prompt in prompts))

    return asyncio.run(run())


def text_part(prompts: int, keyings: Sequence[str], max_tokens: int) -> None:
    from collections import Counter

    from aimod.data.facts import fact_items, spread

    items = spread(fact_items(), prompts)
    asked = [p for item in items for p in prompt_variants(item.question)]
    per = len(asked) // len(items)
    print()
    print(
        f"### smollm2-135m: {len(items)} fact questions x {per} rewordings, {max_tokens} new tokens, each its own "
        "request (real servers); agreement with premium's answer to the question as written"
    )
    print("| keying | tier | single query | majority of the rewordings | premium itself, majority of its rewordings |")
    print("|---|---|---|---|---|")
    for keying in keyings:
        began = time.perf_counter()
        with server(keying, TEXT_SIGMAS, model="smollm2-135m") as base:
            replies = {tier: ask_text(base, tier, asked, max_tokens) for tier in TEXT_SIGMAS}
        answers = {
            tier: [[answer_key(item, r) for r in got[i * per : (i + 1) * per]] for i, item in enumerate(items)]
            for tier, got in replies.items()
        }
        premium = [row[0] for row in answers["premium"]]
        for tier in TEXT_SIGMAS:
            single = statistics.mean(float(row[0] == p) for row, p in zip(answers[tier], premium, strict=True))
            majority = statistics.mean(
                float(Counter(row).most_common(1)[0][0] == p) for row, p in zip(answers[tier], premium, strict=True)
            )
            base_majority = statistics.mean(
                float(Counter(row).most_common(1)[0][0] == p)
                for row, p in zip(answers["premium"], premium, strict=True)
            )
            print(f"| {keying} | {tier} | {100 * single:.0f} | {100 * majority:.0f} | {100 * base_majority:.0f} |")
        print(f"|  ({keying}: {4 * len(asked)} requests in {time.perf_counter() - began:.0f} s) | | | | |")


# -- segmentation ---------------------------------------------------------------------------------------------


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    padded = np.pad(image, ((1, 1), (1, 1)) + ((0, 0),) * (image.ndim - 2), mode="edge")
    height, width = image.shape[:2]
    return np.ascontiguousarray(padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width])


def segmentation_part(scenes: int, copies: int) -> None:
    """Per-pixel votes over near-duplicate scenes (shifted copies re-aligned by the attacker), in process through
    VisionService's own segmentation path (fixed-shape batches, upsampling, modulation, the mask PNG)."""
    import io

    from PIL import Image

    from aimod.calibrate import calibrate_logits
    from aimod.calibrate.inputs import logit_rows
    from aimod.catalog import load
    from aimod.data.scenes import make_scenes
    from aimod.eval.attack import encode_image
    from aimod.server.config import ServerSettings
    from aimod.server.vision import VisionRow, VisionService

    loaded = load("segformer-scenes")
    rows = logit_rows(loaded, "calibration", None)
    tiers = {t.name: t.sigma for t in calibrate_logits(rows.logits, TARGETS, groups=rows.groups)}
    images, _ = make_scenes(scenes, split="test")
    originals = [(image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for image in images]
    generator = torch.Generator().manual_seed(0)

    def variants(image: np.ndarray, family: str) -> list[tuple[bytes, int, int]]:
        out = []
        for _ in range(copies):
            if family == "the same scene":
                out.append((encode_image(image), 0, 0))
            elif family.startswith("Gaussian"):
                std = 2.0 if "std 2" in family else 8.0
                noisy = image + torch.randn(image.shape, generator=generator).numpy() * std
                out.append((encode_image(np.clip(np.round(noisy), 0, 255).astype(np.uint8)), 0, 0))
            elif family == "1-pixel shifts (re-aligned)":
                dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=generator))
                out.append((encode_image(_shifted(image, dy, dx)), dy, dx))
            else:
                quality = int(torch.randint(50, 101, (1,), generator=generator))
                out.append((encode_image(image, "JPEG", quality=quality), 0, 0))
        return out

    families = (
        "the same scene",
        "Gaussian pixel noise, std 2",
        "Gaussian pixel noise, std 8",
        "1-pixel shifts (re-aligned)",
        "JPEG at quality 50 to 100",
    )
    sent = {family: [v for image in originals for v in variants(image, family)] for family in families}
    keyings = {
        "before (fingerprint, one eps)": ("fingerprint", BeforeNoise(SECRET)),
        "fingerprint, nested": ("fingerprint", KeyedNoise(SECRET)),
        "field (default)": ("field", FieldNoise(SECRET)),
    }
    print()
    print(
        f"### segformer-scenes: {scenes} held-out scenes x {copies} copies per family, per-pixel majority of the "
        "returned masks against premium's mask (in process, VisionService's segmentation path)"
    )
    print("tiers (theory, per-pixel): " + ", ".join(f"{t} sigma {s:.3f}" for t, s in tiers.items()))
    print("| keying | family | t90 | t70 | t50 |")
    print("|---|---|---|---|---|")
    plain = VisionService(loaded, KeyedNoise(SECRET), ServerSettings(max_batch=8))

    def clean_of(items: list[tuple[bytes, int, int]]) -> tuple[list[Tensor], Tensor, tuple[int, ...]]:
        pixels = [plain.decode(data) for data, _, _ in items]
        inputs = torch.cat([loaded.preprocess(p[None]) for p in pixels])
        logits = torch.cat([plain._logits(inputs[i : i + 8]) for i in range(0, len(inputs), 8)])
        return pixels, logits, tuple(inputs.shape[-2:])

    cleans = {family: clean_of(items) for family, items in sent.items()}
    original = clean_of([(encode_image(image), 0, 0) for image in originals])

    def masks(service: VisionService, clean: Any, items: list[tuple[bytes, int, int]], sigma: float) -> Tensor:
        pixels, logits, size = clean
        decided = []
        for j, (p, (_, dy, dx)) in enumerate(zip(pixels, items, strict=True)):
            row = VisionRow(p, Modulation(sigma=sigma), "segment")
            key = service._keys([row], logits[j : j + 1])
            answer = service._segment(row, logits[j : j + 1], key, size)
            mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png"]))))
            decided.append(torch.from_numpy(_shifted(mask, -dy, -dx) if (dy or dx) else mask.copy()))
        return torch.stack(decided).to(torch.int64)

    for name, (keying, noise) in keyings.items():
        service = VisionService(loaded, noise, ServerSettings(keying=keying, max_batch=8))  # type: ignore[arg-type]
        premium = masks(service, original, [(b"", 0, 0)] * len(originals), 0.0)
        for family in families:
            cells = []
            for tier in TARGETS:
                got = masks(service, cleans[family], sent[family], tiers[tier]).view(scenes, copies, *premium.shape[1:])
                votes_ = torch.nn.functional.one_hot(got, len(loaded.id2label)).sum(1).argmax(-1)
                single = float((got[:, 0] == premium).float().mean())
                cells.append(f"{100 * single:.0f} -> {100 * float((votes_ == premium).float().mean()):.0f}")
            print(f"| {name} | {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
