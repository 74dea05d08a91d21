"""``aimod sweep``: utility or focus curves of an embedded model, measured and predicted, with plots.

The model runs once over its evaluation set; every (value, seed) point then modulates the cached logits.
Outputs go to ``--out`` (default ``reports/sweep-<model>``): ``<kind>.json``, ``<kind>.csv``, ``<kind>.png``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aimod.errors import InvalidArgumentError

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
@click.option("--focus", "focus_class", default=None, help="Class id or name to focus (focus sweeps).")
@click.option(
    "--values",
    default=None,
    help="Sigmas (utility) or signed focus sigmas: start:stop:count or a comma list. "
    "Defaults: 0:20:21 (utility), 0:20:11 (focus).",
)
@click.option("--seeds", type=click.IntRange(1, 100), default=5, show_default=True, help="Noise seeds per point.")
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
    seeds: int,
    samples: int | None,
    out: Path | None,
    no_theory: bool,
) -> None:
    """Measure utility or focus curves on cached logits, next to the theory's prediction."""
    from aimod.eval.datasets import eval_set
    from aimod.eval.report import save_sweep
    from aimod.eval.sweep import cache_logits, sweep
    from aimod.models import load

    grid = parse_values(values or ("0:20:21" if kind == "utility" else "0:20:11"))
    if kind == "utility" and any(v < 0 for v in grid):
        raise click.UsageError(
            f"Utility sigmas must be >= 0, got {[v for v in grid if v < 0]}; focus sweeps take signs."
        )
    if kind == "focus" and focus_class is None:
        raise click.UsageError("A focus sweep needs --focus CLASS (a class id or name).")
    focus_key: int | str | None = (
        int(focus_class) if focus_class and focus_class.isascii() and focus_class.isdigit() else focus_class
    )
    console = Console()
    started = time.perf_counter()
    loaded = load(model_name)
    data = eval_set(loaded, samples)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("clean logits (one model pass)", total=len(data.inputs))
        cached = cache_logits(
            loaded.logits, data.inputs, data.labels, loaded.id2label, progress=lambda n: progress.advance(task, n)
        )
        task = progress.add_task(f"{kind} sweep", total=len(grid) * seeds)
        result = sweep(
            cached,
            grid,
            kind="focus" if kind == "focus" else "utility",
            focus_class=focus_key,
            seeds=seeds,
            model_name=loaded.name,
            predict=not no_theory,
            progress=lambda n: progress.advance(task, n),
        )
    folder = out or Path("reports") / f"sweep-{loaded.name.replace(':', '_').replace('/', '_')}"
    stem = kind if kind == "utility" else f"focus-{result.focus_class}".replace(" ", "_").replace("/", "_")
    paths = save_sweep(result, folder, stem)

    table = Table(title=f"{loaded.name}: {kind} sweep on {data.description}")
    names = list(result.points[0].measured)
    if kind == "focus":  # many metrics: one compact cell each, measured/theory/bias
        names = [n for n in names if n not in ("accuracy", "mIoU")]
        table.caption = "each cell: measured mean / theory / deterministic bias of the same mean (no noise)"
    table.add_column("sigma" if kind == "utility" else f"focus {result.focus_class!r}", justify="right")
    for name in names:
        if kind == "utility":
            table.add_column(f"{name} % (95 % CI)", justify="right")
            table.add_column("theory %", justify="right")
        else:
            table.add_column(f"{name} %", justify="right")
    for p in result.points:
        cells = [f"{p.value:g}"]
        for name in names:
            e = p.measured[name]
            theory = f"{100 * p.predicted[name]:.1f}" if p.predicted else "-"
            if kind == "utility":
                cells += [f"{100 * e.mean:5.1f} ({100 * e.low:.1f}-{100 * e.high:.1f})", theory]
            else:
                cells.append(f"{100 * e.mean:.1f}/{theory}/{100 * p.baseline[name]:.1f}")
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"{loaded.description}. Wrote {paths['json']}, {paths['csv']} and {paths['png']} "
        f"in {time.perf_counter() - started:.1f} s."
    )
