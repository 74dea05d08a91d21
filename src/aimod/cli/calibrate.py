"""``aimod calibrate``: tiers as utility levels, calibrated without labels, written to a TOML tiers file."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from aimod.field import FieldNoise

__all__ = ["calibrate_command"]

DEFAULT_TIERS = ("premium=1.0", "standard=0.9", "basic=0.7", "free=0.5")


@click.command("calibrate")
@click.option("--model", "model_name", required=True, help="Embedded model name or hf:<id or path>.")
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    metavar="NAME=TARGET",
    help="A tier and its target agreement with the clean model, in (1/K, 1]; repeat, best to worst or worst "
    f"to best [default: {' '.join(DEFAULT_TIERS)}].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Tiers file to write [default: tiers-<model>.toml].",
)
@click.option("--samples", type=click.IntRange(2, None), default=None, help="Calibration inputs (default per model).")
@click.option(
    "--keys", type=click.IntRange(1, 20), default=2, show_default=True, help="Noise keys per measurement (text)."
)
@click.option(
    "--server-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='A server.toml with keying = "field" (the default): calibrate each vision tier under that server\'s own '
    "field noise (its secret and settings), so the served tiers meet their targets on inputs like these.",
)
def calibrate_command(
    model_name: str,
    tiers: tuple[str, ...],
    out: Path | None,
    samples: int | None,
    keys: int,
    server_config: Path | None,
) -> None:
    """Find each tier's sigma from unlabelled inputs and write the tiers file the server reads."""
    from aimod.calibrate import calibrate, parse_tiers, save_tiers

    parse_tiers(tiers or DEFAULT_TIERS)  # malformed tiers fail before anything loads
    noise = _server_noise(server_config, model_name) if server_config is not None else None
    path = out or Path(f"tiers-{model_name.replace(':', '_').replace('/', '_')}.toml")
    if path.is_dir() or any(p.exists() and not p.is_dir() for p in path.parents):
        raise click.UsageError(f"--out {str(path)!r} must be a file path whose folders are folders.")
    console = Console()
    started = time.perf_counter()
    with console.status("calibrating") as status:
        result = calibrate(
            model_name,
            tiers or DEFAULT_TIERS,
            samples=samples,
            keys=keys,
            progress=lambda m: status.update(m),
            noise=noise,
        )
    save_tiers(result, path)
    table = Table(title=f"{result.model}: tiers from {result.samples} unlabelled inputs")
    table.caption = f"{result.metric}; {result.method}"
    for column in ("tier", "target %", "sigma", "predicted % [95 % interval]"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    text = any(t.sigma_low is not None for t in result.tiers)
    if text:
        table.add_column("sigma 95 % interval", justify="right")
    for t in result.tiers:
        row = [
            t.name,
            f"{100 * t.target:g}",
            f"{t.sigma:.4g}",
            f"{100 * t.predicted:.2f} [{100 * t.low:.2f}, {100 * t.high:.2f}]",
        ]
        if text:
            row.append(f"[{t.sigma_low:.4g}, {t.sigma_high:.4g}]" if t.sigma_low is not None else "-")
        table.add_row(*row)
    console.print(table)
    console.print(f"Inputs: {result.inputs}. Wrote {path} in {time.perf_counter() - started:.1f} s.")


def _server_noise(path: Path, model_name: str) -> FieldNoise:
    """The field noise of a server configuration (its secret read as `aimod serve` reads it)."""
    from aimod.server.config import load_config, read_secret
    from aimod.server.served import noise_source

    config = load_config(path)
    if config.model.name != model_name:
        raise click.UsageError(f"--server-config {str(path)!r} serves {config.model.name!r}, not {model_name!r}.")
    noise = noise_source(config, read_secret(config), text=False)
    if not isinstance(noise, FieldNoise):
        raise click.UsageError(
            f"--server-config {str(path)!r} has keying = {config.server.keying!r}; only the field needs a "
            "calibration of its own (the other keyings follow the theory)."
        )
    return noise
