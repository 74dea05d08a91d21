"""Registers aimod's lm-eval model type ``aimod`` as soon as ``lm_eval.models`` is imported.

Loaded at every interpreter start by ``aimod-lm-eval.pth``, so it imports nothing (annotations stay strings) until
lm-eval is being imported: it only watches for the import of ``lm_eval.models`` and then registers
``aimod.eval.harness:AimodLM`` as a lazy entry, the way lm-eval registers its own models. lm-eval has no
plugin entry point for models (0.4.x), hence this hook.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs every interpreter start ~7 ms

if TYPE_CHECKING:  # never at run time: the hook stays free of imports
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

TARGET = "lm_eval.models"
ENTRY = "aimod.eval.harness:AimodLM"


def _register(module: ModuleType) -> None:
    from lm_eval.api.registry import model_registry

    if "aimod" not in model_registry:
        model_registry.register("aimod", target=ENTRY)
    mapping = getattr(module, "MODEL_MAPPING", None)
    if isinstance(mapping, dict):
        mapping.setdefault("aimod", ENTRY)


class _Finder:
    """A meta path finder that finds ``lm_eval.models`` like the path finder, then registers after it runs."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            try:
                _register(module)
            except Exception as error:  # never break lm-eval itself
                print(f"aimod: could not register the lm-eval model type 'aimod': {error}", file=sys.stderr)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Adds the finder once (or registers at once when ``lm_eval.models`` is already imported)."""
    if TARGET in sys.modules:
        _register(sys.modules[TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
