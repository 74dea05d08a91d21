"""``aimod demo``: the core on synthetic classifier logits, measured next to the theory's prediction.

Until the embedded models land, the demo runs on a synthetic 10-class classifier (see
:func:`aimod.data.classifier_logits`) and shows, each with measured and predicted figures side by side:

1. utility modulation: agreement with the clean model and accuracy as sigma grows;
2. a tier set as a utility level ("70 % agreement") rather than a raw sigma;
3. focus modulation: promoting one class and suppressing another;
4. same query, same answer: a majority vote over 101 repeated queries against fresh and keyed noise.
"""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import Tensor

from aimod.data import classifier_logits
from aimod.digest import digest
from aimod.eval.sweep import estimate
from aimod.modulation import Modulation
from aimod.noise import KeyedNoise, SeededNoise
from aimod.redistribute import modulate_logits

__all__ = ["demo"]

_SECRET = "aimod demo secret: use a long random one in production"


def _over_seeds(values: list[float]) -> str:
    """Mean ± 95 % half-width over seeds, in percent."""
    e = estimate(values)
    return f"{100 * e.mean:5.1f} ±{100 * max(e.high - e.mean, e.mean - e.low):.1f}"


def _decisions(logits: Tensor, modulation: Modulation, seed: int) -> Tensor:
    return modulate_logits(logits, modulation, noise=SeededNoise(seed)).argmax(-1)


@click.command()
@click.option(
    "--samples",
    type=click.IntRange(200, 200_000),
    default=4000,
    show_default=True,
    help="Synthetic samples to modulate.",
)
@click.option(
    "--seeds",
    type=click.IntRange(2, 50),
    default=5,
    show_default=True,
    help="Noise seeds per measured point (mean and 95 % interval).",
)
@click.option("--quick", is_flag=True, help="Fewer samples and seeds, for a first look.")
def demo(samples: int, seeds: int, quick: bool) -> None:
    """Show utility and focus modulation, measured next to the exact theory, on a synthetic classifier."""
    from aimod import theory

    if quick:
        samples, seeds = min(samples, 1000), min(seeds, 3)
    console = Console()
    started = time.perf_counter()
    logits, labels = classifier_logits(samples, 10, seed=0)
    clean = logits.argmax(-1)
    sigmas = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 20.0]
    console.rule("[bold]aimod demo[/bold]: synthetic 10-class classifier")
    console.print(
        f"{samples} samples, clean accuracy {100 * float((clean == labels).float().mean()):.1f} %. "
        f"Measured: mean ±95 % interval over {seeds} noise seeds. Theory: aimod.theory from the clean logits "
        "alone (no sampling; no labels for agreement). Share: the fraction of all decisions that are the "
        "focused class.\n"
    )

    utility = Table(title="1. Utility modulation: Gaussian noise of std sigma on every logit (owner)")
    for header in ("sigma", "agreement %", "theory %", "accuracy %", "theory %"):
        utility.add_column(header, justify="right")
    focus = Table(title="3. Focus modulation: half-normal noise on one class (user)")
    for header in ("focus", "recall %", "theory %", "share %", "theory %", "precision %"):
        focus.add_column(header, justify="right")
    focus_cases = [("3", s) for s in (1.0, 2.0, 4.0, 8.0)] + [("0", s) for s in (-1.0, -2.0, -4.0, -8.0)]

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("modulating", total=len(sigmas) + len(focus_cases) + 3)
        for sigma in sigmas:
            m = Modulation(sigma=sigma)
            runs = [_decisions(logits, m, seed) for seed in range(seeds)]
            agree = _over_seeds([float((d == clean).float().mean()) for d in runs])
            acc = _over_seeds([float((d == labels).float().mean()) for d in runs])
            utility.add_row(
                f"{sigma:g}",
                agree,
                f"{100 * float(theory.agreement(logits, m).mean()):5.1f}",
                acc,
                f"{100 * float(theory.accuracy(logits, labels, m).mean()):5.1f}",
            )
            progress.advance(task)

        target = 0.7
        tier_sigma = float(theory.sigma_for(logits, target))
        tier = Modulation(sigma=tier_sigma)
        tier_agree = _over_seeds([float((_decisions(logits, tier, s) == clean).float().mean()) for s in range(seeds)])
        progress.advance(task)

        for name, strength in focus_cases:
            cls = int(name)
            m = Modulation(focus={cls: strength})
            probs = theory.class_probabilities(logits, m)  # (N, K)
            is_cls = labels == cls
            runs = [_decisions(logits, m, seed) for seed in range(seeds)]
            recall = _over_seeds([float((d[is_cls] == cls).float().mean()) for d in runs])
            share = _over_seeds([float((d == cls).float().mean()) for d in runs])
            precision = _over_seeds([float((labels[d == cls] == cls).float().mean()) for d in runs])
            label = f"{'promote' if strength > 0 else 'suppress'} {cls}={strength:+g}"
            focus.add_row(
                label,
                recall,
                f"{100 * float(probs[is_cls, cls].mean()):5.1f}",
                share,
                f"{100 * float(probs[:, cls].mean()):5.1f}",
                precision,
            )
            progress.advance(task)

        attack = _repeated_query_attack(logits[:200], theory.sigma_for(logits, 0.5), votes=101)
        progress.advance(task, 2)

    console.print(utility)
    console.print(
        f"\n[bold]2. A tier as a utility level[/bold]: target agreement {100 * target:.0f} % -> "
        f"theory.sigma_for gives sigma = {tier_sigma:.3f}; measured agreement at that sigma: {tier_agree} %\n"
    )
    console.print(focus)
    console.print(
        "\n[bold]4. Same query, same answer[/bold] (tier at 50 % agreement, 200 inputs, each asked 101 "
        "times, majority vote):"
    )
    console.print(f"   one query:                      {100 * attack['single']:5.1f} % agreement with the clean model")
    console.print(
        f"   majority, fresh noise per query: {100 * attack['fresh']:5.1f} %  <- repeated queries undo the tier"
    )
    console.print(f"   majority, keyed noise (aimod):   {100 * attack['keyed']:5.1f} %  <- the tier holds")
    console.print(f"\nDone in {time.perf_counter() - started:.1f} s. Every figure above is recomputed on each run.")


def _repeated_query_attack(logits: Tensor, sigma: float, *, votes: int) -> dict[str, float]:
    """Agreement of a majority vote over ``votes`` repeated queries, with fresh and with keyed noise."""
    clean = logits.argmax(-1)
    m = Modulation(sigma=sigma)
    repeated = logits.repeat_interleave(votes, dim=0)  # each input asked `votes` times
    fresh = modulate_logits(repeated, m, noise=SeededNoise(0)).argmax(-1).view(-1, votes)
    keyed_noise = KeyedNoise(_SECRET)
    keyed = modulate_logits(repeated, m, noise=keyed_noise, keys=digest(repeated)).argmax(-1).view(-1, votes)
    return {
        "single": float((fresh[:, 0] == clean).float().mean()),
        "fresh": float((fresh.mode(dim=1).values == clean).float().mean()),
        "keyed": float((keyed.mode(dim=1).values == clean).float().mean()),
    }
