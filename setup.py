"""Installs ``aimod-lm-eval.pth`` next to the packages (everything else is in pyproject.toml).

The .pth file makes ``lm_eval --model aimod`` work: see src/_aimod_lm_eval_hook.py.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "aimod-lm-eval.pth"


class BuildWithPth(build_py):
    """build_py that also copies the .pth file to the root of the build (and so of the wheel)."""

    def run(self) -> None:
        """Builds the packages, then places the .pth file."""
        super().run()
        self.copy_file(os.path.join("src", PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)
        if getattr(self, "editable_mode", False):
            # an editable wheel holds only what `install` puts in its root; the .pth must be there too
            root = self.get_finalized_command("install").install_lib
            self.copy_file(os.path.join("src", PTH), os.path.join(root, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        """The packages' outputs and the .pth file."""
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self) -> dict[str, str]:
        """Build output -> source, the .pth file included."""
        mapping = dict(super().get_output_mapping())
        mapping[os.path.join(self.build_lib, PTH)] = os.path.join("src", PTH)
        return mapping


setup(cmdclass={"build_py": BuildWithPth})
