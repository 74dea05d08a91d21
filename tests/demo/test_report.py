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


def test_a_new_run_removes_the_files_the_previous_report_listed(tmp_path: Path) -> None:
    from aimod.demo import _remove_previous

    report = Report("t", "s", {})
    report.sections.append(Section("a", "A", "i", tables=[Table("old", "T", ["x"], [[1]])]))
    write_report(report, tmp_path)
    (tmp_path / "mine.txt").write_text("a user's file")
    _remove_previous(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_a_folder_without_a_demo_summary_is_left_alone(tmp_path: Path) -> None:
    from aimod.demo import _remove_previous

    (tmp_path / "summary.json").write_text('{"something": "else"}')
    (tmp_path / "plot.png").write_bytes(b"x")
    _remove_previous(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "summary.json"]


def test_nan_metrics_become_null_in_the_summary(tmp_path: Path) -> None:
    import json

    report = Report("t", "s", {})
    report.sections.append(Section("a", "A", "i", metrics={"precision": float("nan"), "recall": 0.5}))
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["sections"][0]["metrics"] == {
        "precision": None,
        "recall": 0.5,
    }
