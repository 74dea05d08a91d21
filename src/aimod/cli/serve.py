"""``aimod serve``: the multi-tenant server; ``aimod new-key``: an API key and the hash the config stores."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["new_key_command", "serve_command"]


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The server.toml (model, tiers, tenants, focus policy; see docs/server.md).",
)
@click.option("--host", default=None, help="Override [server].host.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Override [server].port.")
@click.option(
    "--dev",
    is_flag=True,
    help="Development only: without a configured secret, use a PUBLIC fixed secret (anyone can predict the noise).",
)
def serve_command(config_path: Path, host: str | None, port: int | None, dev: bool) -> None:
    """Serve one model to many tenants: tiers from API keys, focus from requests, keyed noise.

    Stops at SIGTERM or Ctrl-C within [server] graceful_timeout_s; exit status 0 when every accepted request
    was answered, 4 when some were cut at the deadline, 3 when the server could not start.
    """
    from aimod.errors import MissingExtraError

    try:
        from aimod.server import build, create_app, load_config
        from aimod.server.listen import uvicorn_config
        from aimod.server.logs import configure
        from aimod.server.process import serve
        from aimod.server.served import configured_noise
    except ImportError as error:
        raise MissingExtraError(error.name or "fastapi", "server") from error

    config = load_config(config_path)
    configure()
    noise = configured_noise(config, dev=dev)  # before the model loads: a missing secret fails fast
    served = build(config, noise)
    app = create_app(served)
    sys.exit(
        serve(uvicorn_config(app, config.server, host=host, port=port), served.engine, config.server.graceful_timeout_s)
    )


@click.command("new-key")
@click.option("--tenant", default="tenant", show_default=True, help="The tenant's name in the printed entry.")
@click.option("--tier", default="free", show_default=True, help="The tenant's tier in the printed entry.")
def new_key_command(tenant: str, tier: str) -> None:
    """Print a fresh API key (give it to the tenant) and the [[tenants]] entry to paste into server.toml."""
    from aimod.server.config import hash_key, new_key

    key = new_key()
    click.echo(f"API key (give it to {tenant}; it is not stored anywhere): {key}", err=True)
    click.echo(f'[[tenants]]\nname = "{tenant}"\ntier = "{tier}"\nkey_sha256 = "{hash_key(key)}"')
