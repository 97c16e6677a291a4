"""``vendo agent``: run models for the shared queue of a scaled deployment (no HTTP API).

It talks to the database and the bucket, not to a server: it is not a client command.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path

import click

from vendo.cli.options import data_dir_option

__all__ = ["agent"]


@click.command("agent")
@click.option(
    "--database-url",
    default=None,
    help="The PostgreSQL database the API servers use (default: VENDO_DATABASE_URL).",
)
@click.option(
    "--storage-url",
    default=None,
    help="The bucket the API servers use, s3://bucket[/prefix] (default: VENDO_STORAGE_URL).",
)
@click.option(
    "--storage-endpoint-url",
    default=None,
    help="The bucket's endpoint when not AWS (default: VENDO_STORAGE_ENDPOINT_URL).",
)
@click.option(
    "--hardware",
    "skus",
    multiple=True,
    metavar="SKU",
    help="Serve only the pools on this SKU (repeat for several). Default: every SKU this "
    "machine can place.",
)
@click.option(
    "--name",
    default=None,
    help="This agent's name, unique among the agents (default: the host name). Its claimed "
    "jobs are recorded under it; a restart under the same name recovers them.",
)
@data_dir_option
def agent(
    database_url: str | None,
    storage_url: str | None,
    storage_endpoint_url: str | None,
    skus: tuple[str, ...],
    name: str | None,
    data_dir: Path | None,
) -> None:
    """Run models for the shared queue: registers with its hardware, heartbeats, claims
    the work it can place, builds environments from the bucket's packages, runs them."""
    import sqlalchemy as sa

    from vendo.agent import run_agent
    from vendo.config import Settings
    from vendo.errors import VendoError

    overrides: dict[str, object] = {}
    for key, value in (
        ("database_url", database_url),
        ("storage_url", storage_url),
        ("storage_endpoint_url", storage_endpoint_url),
        ("data_dir", data_dir),
    ):
        if value is not None:
            overrides[key] = value
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    name = name or socket.gethostname()

    def ready() -> None:
        click.echo(f"Vendo agent {name} running models (data in {settings.data_dir})", err=True)

    try:
        code = asyncio.run(run_agent(settings, name, skus, on_ready=ready))
    except VendoError as exc:
        raise click.ClickException(exc.detail) from None
    except sa.exc.SQLAlchemyError as exc:
        where = sa.make_url(str(settings.database_url)).render_as_string(hide_password=True)
        first = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).splitlines()[0]
        raise click.ClickException(f"cannot use the database at {where}: {first}") from None
    sys.exit(code)
