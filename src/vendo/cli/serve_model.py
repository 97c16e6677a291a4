"""``vendo serve-model [DIR]``: one model behind Cog's HTTP API (what ``cog serve`` gives)."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vendo.cli.options import data_dir_option, host_option, no_build_option, port_option

if TYPE_CHECKING:
    from vendo.api.cog import CogServerOptions
    from vendo.config import Settings

__all__ = ["serve_model"]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket created as IPPROTO_TCP: asyncio only sets TCP_NODELAY on
    accepted sockets whose listener says so, and without it small responses can wait
    40 ms for a delayed ACK (uvloop sets it regardless; this covers the plain loop)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


@click.command("serve-model")
@click.argument(
    "directory",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@host_option
@port_option
@click.option(
    "--upload-url",
    default=None,
    help="PUT output files to URL/<name> and return their URLs instead of data: URLs.",
)
@data_dir_option
@no_build_option
def serve_model(
    directory: Path,
    host: str | None,
    port: int | None,
    upload_url: str | None,
    data_dir: Path | None,
    no_build: bool,
) -> None:
    """Serve the model in DIR (cog.yaml + predict.py) with Cog's HTTP prediction API.

    The model runs in the environment `vendo build` makes (built now if needed)."""
    from vendo.cli.progress import load_settings

    settings = load_settings(data_dir)
    runtime: Path | None = None
    try:
        if no_build:
            runtime = Path(tempfile.mkdtemp(prefix="vendo-runtime-"))
        options = _server_options(directory, settings, upload_url, runtime)
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        # uvicorn's own access log costs time on every request; errors still show
        logging.getLogger("uvicorn.access").disabled = True
        _run_server(options, directory, host or settings.host, port or settings.port)
    finally:
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)


def _server_options(
    directory: Path, settings: Settings, upload_url: str | None, runtime: Path | None
) -> CogServerOptions:
    """The model's server options: built now, or with ``runtime`` (``--no-build``) run on
    this interpreter with Vendo's runtime installed into that folder."""
    from vendo.api.cog import CogServerOptions
    from vendo.cli.progress import build_with_progress, stderr_console
    from vendo.errors import VendoError
    from vendo.runner.dist import install_runtime
    from vendo.serving.records import FetchLimits

    common: dict[str, Any] = {
        "upload_url": upload_url,
        "freeze_gc": True,
        "cancel_grace": settings.cancel_grace,
        "max_restarts": settings.max_restarts,
        "retention": settings.retention,
        "webhook_timeout": settings.webhook_timeout,
        "fetch_limits": FetchLimits(
            max_bytes=settings.max_upload_bytes,
            max_data_uri_bytes=settings.max_data_uri_bytes,
            allow_private=settings.allow_private_urls,
        ),
    }
    if runtime is not None:
        install_runtime(runtime)
        try:
            options = CogServerOptions.from_project(
                directory, python=sys.executable, runtime_path=runtime, **common
            )
        except VendoError as exc:
            raise click.ClickException(exc.detail) from exc
    else:
        result = build_with_progress(directory, settings, stderr_console())
        options = CogServerOptions.from_build(result, **common)
    if settings.setup_timeout > 0 and "COG_SETUP_TIMEOUT" not in os.environ:
        # Vendo's setting, unless Cog's own variable says otherwise
        options.environment = {
            "COG_SETUP_TIMEOUT": f"{settings.setup_timeout:g}",
            **options.environment,
        }
    return options


def _run_server(options: CogServerOptions, directory: Path, host: str, port: int) -> None:
    """Serves until a signal or ``POST /shutdown``."""
    import uvicorn

    from vendo.api.cog import create_app

    app = create_app(options)
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        access_log=False,
        log_level="info",
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    options.on_shutdown = stop
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {directory} on http://{shown}:{sock.getsockname()[1]}", err=True)
    server.run(sockets=[sock])
