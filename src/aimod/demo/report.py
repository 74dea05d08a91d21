"""The demo's report: sections of findings, tables and figures, written as CSV, JSON and one HTML page.

The page is self-contained: styles are inline, there is no script, and every figure is embedded (a data URI)
and links to its PNG beside the page; every table links to its CSV. So the page reads the same when opened
from the report folder, mailed on its own, or served by any static server.

Example:
    >>> import tempfile
    >>> report = Report(title="demo", subtitle="offline", settings={"quick": True})
    >>> report.sections.append(Section("s", "A section", "Why it matters.", findings=["x is 1"],
    ...     tables=[Table("t", "A table", ["a", "b"], [[1, "two"]])]))
    >>> folder = write_report(report, tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['index.html', 'summary.json', 't.csv']
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Report", "Section", "Table", "write_report"]


@dataclass
class Table:
    """A table: written as ``<name>.csv`` and shown in the page."""

    name: str
    """File stem (``1-photo-tiers`` -> ``1-photo-tiers.csv``)."""
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    """A sentence under the table (how it was measured)."""


@dataclass
class Figure:
    """A PNG the section drew into the report folder as ``<name>.png``."""

    name: str
    title: str
    caption: str


@dataclass
class Section:
    """One part of the story."""

    key: str
    title: str
    intro: str
    """What the section shows and why, in a few sentences."""
    findings: list[str] = field(default_factory=list)
    """The measured results in one line each (also printed in the console summary)."""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    """The key figures, machine-readable (fractions, sigmas), in ``summary.json``."""
    seconds: float = 0.0
    """Wall time of the section."""


@dataclass
class Report:
    """The whole demo run."""

    title: str
    subtitle: str
    settings: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0


def write_report(report: Report, folder: str | Path) -> Path:
    """Writes every table as CSV, ``summary.json`` and ``index.html`` into ``folder`` (figures are already there).

    Raises:
        FileNotFoundError: When a section names a figure whose PNG is missing from ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for section in report.sections:
        for table in section.tables:
            with (folder / f"{table.name}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(table.columns)
                writer.writerows(table.rows)
        for figure in section.figures:
            if not (folder / f"{figure.name}.png").is_file():
                raise FileNotFoundError(f"figure {figure.name!r} of section {section.key!r}: no {figure.name}.png")
    summary = json.dumps(_finite(asdict(report)), indent=2, default=str, allow_nan=False)
    (folder / "summary.json").write_text(summary + "\n", encoding="utf-8")
    (folder / "index.html").write_text(render_html(report, folder), encoding="utf-8")
    return folder


def _finite(value: Any) -> Any:
    """NaN and infinities (a metric of a class never decided) become None: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2rem auto;
       padding: 0 1rem; color: #1d232a; line-height: 1.5; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #5b6470; margin-top: 0; }
nav ol { columns: 2; } section { border-top: 1px solid #d8dde3; margin-top: 2rem; padding-top: 0.5rem; }
ul.findings li { margin: 0.15rem 0; } .time { color: #5b6470; font-size: 0.85rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #e3e7eb; }
figcaption { font-size: 0.9rem; color: #3b4450; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #d8dde3; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
.note { font-size: 0.85rem; color: #5b6470; } code { background: #f2f4f7; padding: 0 0.2rem; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    link = f'<a href="{html.escape(table.name)}.csv">{html.escape(table.name)}.csv</a>'
    note = f'<p class="note">{html.escape(table.note)} ({link})</p>' if table.note else f'<p class="note">{link}</p>'
    return f"<table><caption>{html.escape(table.title)}</caption><tr>{head}</tr>{body}</table>{note}"


def _figure_html(figure: Figure, folder: Path) -> str:
    data = base64.b64encode((folder / f"{figure.name}.png").read_bytes()).decode("ascii")
    name = html.escape(figure.name)
    return (
        f'<figure><a href="{name}.png"><img src="data:image/png;base64,{data}" alt="{html.escape(figure.title)}">'
        f"</a><figcaption><b>{html.escape(figure.title)}.</b> {html.escape(figure.caption)} "
        f'(<a href="{name}.png">{name}.png</a>)</figcaption></figure>'
    )


def render_html(report: Report, folder: Path) -> str:
    """The page: a table of contents, then each section's intro, findings, figures and tables."""
    toc = "".join(f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in report.sections)
    parts = []
    for s in report.sections:
        findings = "".join(f"<li>{html.escape(f)}</li>" for f in s.findings)
        parts.append(
            f'<section id="{html.escape(s.key)}"><h2>{html.escape(s.title)}</h2>'
            f'<p>{html.escape(s.intro)}</p><ul class="findings">{findings}</ul>'
            + "".join(_figure_html(f, folder) for f in s.figures)
            + "".join(_table_html(t) for t in s.tables)
            + f'<p class="time">{s.seconds:.1f} s</p></section>'
        )
    settings = ", ".join(f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in report.settings.items())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(report.title)}</h1><p class="subtitle">{html.escape(report.subtitle)}</p>'
        f"<nav><ol>{toc}</ol></nav>{''.join(parts)}"
        f'<section><p class="note">Settings: {settings}. Total time {report.seconds:.1f} s. '
        'Data: <a href="summary.json">summary.json</a>.</p></section></body></html>\n'
    )
