from __future__ import annotations

from pathlib import Path

import pytest

from aimod.demo.report import Figure, Report, Section, Table, write_report


def test_text_is_escaped_and_tables_become_csv(tmp_path: Path) -> None:
    report = Report("t <b>", "s", {"k": "<v>"})
    report.sections.append(
        Section(
            "a",
            "A & B",
            "<script>alert(1)</script>",
            findings=["1 < 2"],
            tables=[Table("t1", "T", ["x", "y"], [["<i>", 0.123456]])],
        )
    )
    write_report(report, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "A &amp; B" in page
    assert "&lt;i&gt;" in page
    assert "0.1235" in page  # floats at 4 significant digits in the page, full precision in the CSV
    assert (tmp_path / "t1.csv").read_text().splitlines() == ["x,y", "<i>,0.123456"]


def test_a_missing_figure_is_an_error(tmp_path: Path) -> None:
    report = Report("t", "s", {})
    report.sections.append(Section("a", "A", "i", figures=[Figure("nope", "N", "c")]))
    with pytest.raises(FileNotFoundError, match="nope"):
        write_report(report, tmp_path)


def test_figures_are_embedded_and_linked(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    report = Report("t", "s", {})
    report.sections.append(Section("a", "A", "i", figures=[Figure("f", "F", "c")]))
    page = (write_report(report, tmp_path) / "index.html").read_text()
    assert 'src="data:image/png;base64,iVBORw0KGgpmYWtl"' in page
    assert 'href="f.png"' in page
