"""Command-line options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = [
    "data_dir_option",
    "host_option",
    "no_build_option",
    "port_option",
    "token_option",
    "url_option",
]

host_option = click.option(
    "--host", default=None, help="Address to bind to (default: VENDO_HOST, 127.0.0.1)."
)
port_option = click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: VENDO_PORT, 5000).",
)


def _note_data_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # shared with the whole command (ctx.meta): a failure to use it names the option
    ctx.meta["vendo.data_dir"] = value
    return value


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_note_data_dir,
    help="Folder for the database, files and environments (default: VENDO_DATA_DIR, ./.vendo).",
)
no_build_option = click.option(
    "--no-build",
    is_flag=True,
    help="Run the model on Vendo's own interpreter instead of its built environment "
    "(for developing a model whose packages are installed there already).",
)

# The client commands (push, run, ...): how they reach the server (vendo.cli.remote).
# A new client command takes both and vendo.cli.remote.api_client, so that it finds
# `vendo serve` and fails in one line like the others; tests/cli/test_client_server.py
# lists every command with --url and runs it against a stopped server.
url_option = click.option(
    "--url",
    envvar="VENDO_URL",
    default=None,
    help="Server URL (default: VENDO_URL, else the address `vendo serve` recorded in its "
    "data dir, else http://127.0.0.1:5000).",
)
token_option = click.option(
    "--token",
    default=None,
    help="API token (default: VENDO_API_TOKEN, REPLICATE_API_TOKEN, else the server's "
    "data dir api_token).",
)
