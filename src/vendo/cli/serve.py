"""``vendo serve``: the platform (Replicate's API) on the embedded default."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import click

from vendo.cli.options import data_dir_option, host_option, port_option

__all__ = ["serve"]


@click.command("serve")
@host_option
@port_option
@data_dir_option
@click.option("--examples", is_flag=True, help="Push the models in examples/ at start-up.")
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this certificate (PEM); clients turn https: output URLs into files.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The private key (PEM) of --ssl-certfile.",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    examples: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Run the platform: Replicate's HTTP API over an embedded store."""
    import uvicorn

    from vendo.app import create_app
    from vendo.config import Settings
    from vendo.errors import VendoError
    from vendo.store.sealing import SecretBox

    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        # an unusable secrets key is one clear line here, not a traceback from the lifespan
        SecretBox.from_settings(settings)
    except VendoError as exc:
        raise click.ClickException(exc.detail) from exc
    app = create_app(settings, examples=examples)
    scheme = "https" if ssl_certfile else "http"
    click.echo(
        f"Vendo serving Replicate's API at {scheme}://{settings.host}:{settings.port}/v1 "
        f"(data in {Path(settings.data_dir).resolve()})",
        err=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        # vendo.api reads X-Forwarded-Proto/Host itself (base_url); uvicorn's layer only
        # rewrites the client address, which only the access log shows
        proxy_headers=settings.access_log,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="info",
        access_log=settings.access_log,
    )
    server = uvicorn.Server(config)
    server.run()
    if server.started is False:
        sys.exit(1)
