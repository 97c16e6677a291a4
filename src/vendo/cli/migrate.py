"""``vendo migrate``: upgrade the database schema and exit.

Every ``vendo serve`` upgrades the schema when it starts; in scaled mode a deployment
runs this once instead, as a job before its servers and agents roll out (the Kubernetes
manifests in ``deploy/kubernetes`` do), so that several starting at once do not race.
"""

from __future__ import annotations

from pathlib import Path

import click

from vendo.cli.options import data_dir_option

__all__ = ["migrate"]


@click.command("migrate")
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Upgrade the database (VENDO_DATABASE_URL, else SQLite in the data dir) to this
    version's schema."""
    import sqlalchemy as sa

    from vendo.config import Settings
    from vendo.store import Store, database_url

    overrides: dict[str, object] = {} if data_dir is None else {"data_dir": data_dir}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    url = database_url(Path(settings.data_dir), settings.database_url)
    try:
        store = Store.open(url)
    except sa.exc.SQLAlchemyError as exc:
        where = sa.make_url(url).render_as_string(hide_password=True)
        first = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).splitlines()[0]
        raise click.ClickException(f"cannot upgrade the database at {where}: {first}") from None
    try:
        with store.engines.writer.connect() as conn:
            revision = conn.scalar(sa.text("select version_num from alembic_version"))
    finally:
        store.close()
    click.echo(f"The database is at revision {revision}.", err=True)
