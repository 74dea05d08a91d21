"""``aimod demo``: the whole story on the embedded models, offline, in a few minutes, as a report folder.

Five sections, each a function of a :class:`Context` returning a :class:`~aimod.demo.report.Section`:

1. :func:`~aimod.demo.photos.photo_tiers` - utility tiers calibrated without labels on efficientnet-lite0
   (ImageNet weights) and the photos bundled with scikit-image;
2. :func:`~aimod.demo.fashion.fashion_curve` - resnet-fashion's utility curve, measured next to the theory;
3. :func:`~aimod.demo.scenes.scene_focus` - focus on one class of segformer-scenes, with overlays;
4. :func:`~aimod.demo.text.text_tiers` - smollm2-135m answering the same questions at each tier, and word focus;
5. :func:`~aimod.demo.attack.repeated_queries` - the repeated-query attack, fresh against keyed noise.

:func:`run_demo` runs them and writes the report (``index.html``, PNG plots, CSV tables, ``summary.json``).
Everything is recomputed on each run from the embedded models and data; nothing is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aimod.demo.context import FULL, QUICK, Budget, Context
from aimod.demo.report import Report, Section, write_report
from aimod.errors import InvalidArgumentError

__all__ = ["FULL", "QUICK", "SECTIONS", "Budget", "run_demo", "total_steps"]


def _sections() -> dict[str, tuple[Callable[[Context], Section], int]]:
    from aimod.demo import attack, fashion, photos, scenes, text

    return {
        "photos": (photos.photo_tiers, photos.STEPS),
        "fashion": (fashion.fashion_curve, fashion.STEPS),
        "scenes": (scenes.scene_focus, scenes.STEPS),
        "text": (text.text_tiers, text.STEPS),
        "attack": (attack.repeated_queries, attack.STEPS),
    }


SECTIONS = ("photos", "fashion", "scenes", "text", "attack")
"""Section names, in the order they run and appear."""


def total_steps(sections: Sequence[str] = SECTIONS) -> int:
    """Progress steps of a run of ``sections``."""
    table = _sections()
    return sum(table[s][1] for s in sections)


def run_demo(
    folder: str | Path,
    *,
    quick: bool = False,
    sections: Sequence[str] = SECTIONS,
    step: Callable[[str], None] | None = None,
) -> Report:
    """Runs the demo's ``sections`` and writes the report into ``folder``; returns the report.

    Args:
        folder: The report folder (created; the files an earlier report there listed are removed first).
        quick: The :data:`QUICK` budget (about a minute on 2 cores) instead of :data:`FULL`.
        sections: A subset of :data:`SECTIONS`, run in the canonical order.
        step: Called with a description as each step starts (:func:`total_steps` of them).

    Raises:
        InvalidArgumentError: For an unknown section name.
    """
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise InvalidArgumentError("sections", list(sections), f"a non-empty subset of {list(SECTIONS)}")
    started = time.perf_counter()
    budget: Budget = QUICK if quick else FULL
    ctx = Context(folder=Path(folder), budget=budget, step=step or (lambda _: None))
    ctx.folder.mkdir(parents=True, exist_ok=True)
    _remove_previous(ctx.folder)
    table = _sections()
    report = Report(
        title="aimod demo: one model, many behaviours",
        subtitle=(
            "Utility tiers, focus, the exact theory and keyed noise on the embedded models (efficientnet-lite0, "
            "resnet-fashion, segformer-scenes, smollm2-135m), computed offline on this machine."
        ),
        settings={"budget": "quick" if quick else "full", **vars(budget)},
    )
    for name in SECTIONS:
        if name in sections:
            report.sections.append(table[name][0](ctx))
    report.seconds = time.perf_counter() - started
    write_report(report, ctx.folder)
    return report


def _remove_previous(folder: Path) -> None:
    """Deletes the files an earlier report in ``folder`` listed, so no stale figure or table survives."""
    import json

    summary = folder / "summary.json"
    if not summary.is_file():
        return
    try:
        sections = json.loads(summary.read_text())["sections"]
        names = [f"{f['name']}.png" for s in sections for f in s["figures"]]
        names += [f"{t['name']}.csv" for s in sections for t in s["tables"]]
    except (ValueError, KeyError, TypeError):
        return  # not a demo report: leave the folder's files alone
    for name in [*names, "index.html", "summary.json"]:
        if "/" not in name and "\\" not in name:
            (folder / name).unlink(missing_ok=True)
