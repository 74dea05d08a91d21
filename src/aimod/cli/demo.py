"""``aimod demo``: the whole story on the embedded models, with a progress display, a summary and a report.

See :mod:`aimod.demo` for what each section shows. The report goes to ``--out`` (default ``reports/demo``):
``index.html`` (self-contained: open it in a browser), PNG plots, CSV tables and ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["demo"]


def _sections(text: str | None) -> list[str]:
    from aimod.demo import SECTIONS

    if text is None:
        return list(SECTIONS)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise click.BadParameter(f"{text!r}: sections are a comma list of {', '.join(SECTIONS)}", param_hint="--only")
    return chosen


@click.command()
@click.option("--quick", is_flag=True, help="Smaller samples and fewer seeds: about a minute on 2 cores.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Report folder (index.html, PNG plots, CSV tables, summary.json).",
)
@click.option(
    "--only", default=None, help="Run only these sections (comma list of photos, fashion, scenes, text, attack)."
)
def demo(quick: bool, out: Path, only: str | None) -> None:
    """Utility tiers, focus, the theory and keyed noise on the embedded models, offline, with an HTML report."""
    from aimod.demo import run_demo, total_steps

    sections = _sections(only)
    console = Console()
    started = time.perf_counter()
    console.rule(f"[bold]aimod demo[/bold]{' --quick' if quick else ''}: one model, many behaviours")
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        total = total_steps(sections)
        task = progress.add_task("starting", total=total)
        count = [0]

        def step(description: str) -> None:
            progress.update(task, description=description, completed=count[0])
            count[0] += 1

        report = run_demo(out, quick=quick, sections=sections, step=step)
        progress.update(task, description="done", completed=total)
    for section in report.sections:
        console.print(f"\n[bold]{escape(section.title)}[/bold] [dim]({section.seconds:.0f} s)[/dim]")
        for finding in section.findings:
            console.print(f"  - {finding}", highlight=False, markup=False)
    figures = sum(len(s.figures) for s in report.sections)
    tables = sum(len(s.tables) for s in report.sections)
    console.print(
        f"\nDone in {time.perf_counter() - started:.0f} s. Report: [bold]{out / 'index.html'}[/bold] "
        f"({figures} plots, {tables} tables); open it in a browser.",
        markup=True,
    )
