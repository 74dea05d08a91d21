from __future__ import annotations

import subprocess
import sys
import types

import aimod


def test_all_is_sorted_and_complete() -> None:
    assert list(aimod.__all__) == sorted(aimod.__all__)
    public = {
        name
        for name, value in vars(aimod).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)  # submodules load on use
    } - {"annotations", "TYPE_CHECKING", "Any"}
    assert public <= set(aimod.__all__)
    for name in aimod.__all__:
        assert getattr(aimod, name) is not None


def test_error_tree_matches_builtins() -> None:
    assert issubclass(aimod.InvalidModulationError, ValueError)
    assert issubclass(aimod.UnknownClassError, LookupError)
    assert issubclass(aimod.UnknownClassError, aimod.InvalidModulationError)
    assert issubclass(aimod.MissingExtraError, ImportError)
    assert all(issubclass(getattr(aimod, n), aimod.AimodError) for n in aimod.__all__ if n.endswith("Error"))


def test_import_aimod_stays_light() -> None:
    code = (
        "import sys, aimod; heavy = [m for m in ('scipy', 'transformers', 'matplotlib', 'fastapi', 'rich', 'click')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_theory_loads_on_first_use() -> None:
    assert callable(aimod.theory.agreement)
