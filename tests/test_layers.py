"""The layer rules of docs/architecture.md, checked on the code: no module imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

import aimod

SRC = Path(aimod.__file__).parent

LAYERS = {
    **dict.fromkeys(
        [
            "errors",
            "modulation",
            "_hash",
            "_checks",
            "_schema",
            "noise",
            "chain",
            "field",
            "digest",
            "content_keys",
            "redistribute",
        ],
        0,
    ),
    "theory": 1,
    "models": 2,
    "text": 2,
    "vllm": 2,
    "data": 3,
    "catalog": 4,
    "eval": 5,
    "calibrate": 5,
    "server": 6,
    "demo": 6,
    "cli": 7,
}
"""Top-level module or package -> layer, as in docs/architecture.md."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``aimod.*`` module a file imports, at any depth (lazy imports in functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.startswith("aimod.")]
    return found


def test_every_module_has_a_layer() -> None:
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.rglob("*.py")}
    assert tops - {"__init__", "__main__"} == set(LAYERS)


def test_no_module_imports_a_layer_above_it() -> None:
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        top = path.relative_to(SRC).parts[0].removesuffix(".py")
        if top in ("__init__", "__main__"):
            continue  # the package facade re-exports the public API of every layer
        for line, name in _imports(path):
            other = name.split(".")[1]
            if LAYERS[other] > LAYERS[top]:
                violations.append(f"{path.relative_to(SRC)}:{line} (layer {LAYERS[top]}) imports {name}")
    assert violations == []


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from aimod.server import app\n    import aimod.cli\n")
    assert _imports(module) == [(2, "aimod.server"), (3, "aimod.cli")]
