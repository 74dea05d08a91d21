"""``aimod sweep``: utility or focus curves of an embedded model, measured and predicted, with plots.

The model runs once over its evaluation set; every (value, seed) point then modulates the cached logits.
Outputs go to ``--out`` (default ``reports/sweep-<model>``): ``<kind>.json``, ``<kind>.csv``, ``<kind>.png``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import click
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aimod.catalog import TextModel, VisionModel
from aimod.errors import InvalidArgumentError
from aimod.eval.report import save_sweep
from aimod.eval.sweep import SweepResult
from aimod.modulation import parse_names

__all__ = ["parse_values", "sweep_command"]


def parse_values(text: str) -> list[float]:
    """``"0:20:21"`` (start:stop:count, inclusive) or ``"0,1,2.5"`` -> a list of floats.

    Example:
        >>> parse_values("0:1:3"), parse_values("2, -1")
        ([0.0, 0.5, 1.0], [2.0, -1.0])
    """
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            n = int(count)
            if n < 2:
                raise ValueError
            return [float(v) for v in torch.linspace(float(start), float(stop), n, dtype=torch.float64).tolist()]
        values = [float(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ValueError
        if not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except ValueError:
        raise InvalidArgumentError(
            "--values",
            text,
            "start:stop:count (count >= 2) or a comma-separated list of numbers",
            "For example --values 0:20:21 or --values 0,1,2,4,8.",
        ) from None


@click.command("sweep")
@click.option(
    "--model", "model_name", default="resnet-fashion", show_default=True, help="Embedded model name or hf:<id or path>."
)
@click.option("--kind", type=click.Choice(["utility", "focus"]), default="utility", show_default=True)
@click.option(
    "--focus",
    "focus_class",
    default=None,
    help="What to focus, named as in a modulation string: a class name or id; for language models, words "
    "(comma list, quotes for names with commas: 'paris, \"new york\"'). Strengths come from --values.",
)
@click.option(
    "--values",
    default=None,
    help="Sigmas (utility) or signed focus sigmas: start:stop:count or a comma list. "
    "Defaults: 0:20:21 (utility), 0:20:11 (focus); language models 0:4:9 and -1024,-64,-16,0,4,8,16.",
)
@click.option(
    "--seeds", type=click.IntRange(1, 100), default=None, help="Noise seeds per point [default: 5; 3 for text]."
)
@click.option("--samples", type=click.IntRange(1, None), default=None, help="Cap on evaluation samples.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: reports/sweep-<model>].",
)
@click.option("--no-theory", is_flag=True, help="Skip the theory's predictions.")
def sweep_command(
    model_name: str,
    kind: str,
    focus_class: str | None,
    values: str | None,
    seeds: int | None,
    samples: int | None,
    out: Path | None,
    no_theory: bool,
) -> None:
    """Measure utility or focus curves on cached logits, next to the theory's prediction."""
    from aimod.catalog import kind as kind_of
    from aimod.catalog import load

    text = kind_of(model_name) == "causal-lm"
    default_values = {
        (False, "utility"): "0:20:21",
        (False, "focus"): "0:20:11",
        (True, "utility"): "0:4:9",
        (True, "focus"): "-1024,-64,-16,0,4,8,16",
    }[(text, kind)]
    grid = parse_values(values or default_values)
    if kind == "utility" and any(v < 0 for v in grid):
        raise click.UsageError(
            f"Utility sigmas must be >= 0, got {[v for v in grid if v < 0]}; focus sweeps take signs."
        )
    if kind == "focus" and focus_class is None:
        raise click.UsageError("A focus sweep needs --focus CLASS (a class id or name; words for a language model).")
    seeds = seeds or (3 if text else 5)
    console = Console()
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with console.status(f"loading {model_name}"):
        model = load(model_name)
    if isinstance(model, TextModel):
        result, description = _text(model, kind, focus_class, grid, seeds, samples, no_theory, columns, console)
    else:
        result, description = _vision(model, kind, focus_class, grid, seeds, samples, no_theory, columns, console)
    name = model.name
    folder = out or Path("reports") / f"sweep-{name.replace(':', '_').replace('/', '_')}"
    stem = kind if kind == "utility" else f"focus-{result.focus_class}".replace(" ", "_").replace("/", "_")
    stem = stem.replace(",", "")
    paths = save_sweep(result, folder, stem)
    console.print(_table(result, name, kind, description))
    console.print(f"Wrote {paths['json']}, {paths['csv']} and {paths['png']} in {time.perf_counter() - started:.1f} s.")


def _vision(
    model: VisionModel,
    kind: str,
    focus_class: str | None,
    grid: list[float],
    seeds: int,
    samples: int | None,
    no_theory: bool,
    columns: tuple[Any, ...],
    console: Console,
) -> tuple[SweepResult, str]:
    from aimod.eval.sweep import cache_logits, sweep

    focus_key: int | str | None = None
    if focus_class is not None:
        names = parse_names(focus_class)
        if len(names) != 1:
            raise InvalidArgumentError("--focus", focus_class, "one class name or id for a vision model")
        focus_key = names[0]
    data = model.inputs("evaluation", samples)
    assert data.images is not None  # a vision model has images
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("clean logits (one model pass)", total=len(data))
        cached = cache_logits(
            model.logits, data.images, data.labels, model.id2label, progress=lambda n: progress.advance(task, n)
        )
        task = progress.add_task(f"{kind} sweep", total=len(grid) * seeds)
        result = sweep(
            cached,
            grid,
            kind="focus" if kind == "focus" else "utility",
            focus_class=focus_key,
            seeds=seeds,
            model_name=model.name,
            predict=not no_theory,
            progress=lambda n: progress.advance(task, n),
        )
    return result, f"{data.description}; {model.description}"


def _text(
    model: TextModel,
    kind: str,
    focus_words: str | None,
    grid: list[float],
    seeds: int,
    samples: int | None,
    no_theory: bool,
    columns: tuple[Any, ...],
    console: Console,
) -> tuple[SweepResult, str]:
    from aimod.eval.text import text_sweep

    data = model.inputs("evaluation", samples)  # every category, not only the first one
    items = data.items
    words = [str(w) for w in parse_names(focus_words)] if focus_words is not None else []
    utility = kind == "utility"
    with Progress(*columns, console=console, transient=True) as progress:
        steps = seeds + (len(grid) if utility else 0)  # one generation grid per seed, one scoring per value
        task = progress.add_task(f"{kind} sweep ({len(grid)} values x {len(items)} prompts)", total=steps)
        result = text_sweep(
            model.model,
            model.tokenizer,
            items,
            grid,
            kind="utility" if utility else "focus",
            focus_words=words,
            seeds=seeds,
            model_name=model.name,
            predict=not no_theory,
            progress=lambda n: progress.advance(task, n),
        )
    return result, data.description


_SHORT = {
    "exact_match": "exact match",
    "mc_accuracy": "MC accuracy",
    "token_agreement": "token agr.",
    "first_token_agreement": "1st token agr.",
    "word_rate": "word rate",
}


def _table(result: SweepResult, name: str, kind: str, description: str) -> Table:
    table = Table(title=f"{name}: {kind} sweep on {description}")
    table.caption = f"mean [95 % interval] over {result.seeds} seeds"
    if any(p.predicted for p in result.points):
        table.caption += "; theory: the exact prediction from the clean logits"
    names = list(result.points[0].measured)
    vision_focus = kind == "focus" and bool(result.points[0].baseline)
    if vision_focus:  # many metrics: one compact cell each, measured/theory/bias
        names = [n for n in names if n not in ("accuracy", "mIoU")]
        table.caption = "each cell: measured mean / theory / deterministic bias of the same mean (no noise)"
    table.add_column("sigma" if kind == "utility" else f"focus {result.focus_class!r}", justify="right")
    for metric in names:
        if vision_focus:
            table.add_column(f"{metric} %", justify="right")
        else:
            table.add_column(f"{_SHORT.get(metric, metric)} %", justify="right")
            if any(metric in p.predicted for p in result.points):
                table.add_column("theory %", justify="right")
    for p in result.points:
        cells = [f"{p.value:g}"]
        for metric in names:
            e = p.measured[metric]
            theory = f"{100 * p.predicted[metric]:.1f}" if metric in p.predicted else "-"
            if vision_focus:
                cells.append(f"{100 * e.mean:.1f}/{theory}/{100 * p.baseline[metric]:.1f}")
            else:
                cells.append(f"{100 * e.mean:.1f} [{100 * e.low:.1f}, {100 * e.high:.1f}]")
                if any(metric in q.predicted for q in result.points):
                    cells.append(theory)
        table.add_row(*cells)
    return table
