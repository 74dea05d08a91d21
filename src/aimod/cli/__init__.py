"""The ``aimod`` command. One module per subcommand; this one wires them together.

Errors aimod raises on purpose (:class:`aimod.AimodError`) become usage errors (exit code 2) with the
same message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from aimod import __version__
from aimod.errors import AimodError

__all__ = ["cli", "main"]


class _AimodGroup(click.Group):
    """A click group that turns AimodError into a clean usage error."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AimodError as error:
            raise click.UsageError(str(error), ctx) from error


@click.group(cls=_AimodGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aimod")
def cli() -> None:
    """aimod: one pretrained model, many behaviours, by redistributing its logits with controlled noise."""


def _register() -> None:
    from aimod.cli.calibrate import calibrate_command
    from aimod.cli.demo import demo
    from aimod.cli.serve import new_key_command, serve_command
    from aimod.cli.sweep import sweep_command

    cli.add_command(calibrate_command)
    cli.add_command(demo)
    cli.add_command(new_key_command)
    cli.add_command(serve_command)
    cli.add_command(sweep_command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``aimod`` console script."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="aimod")
