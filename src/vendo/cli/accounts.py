"""``vendo users``, ``vendo tokens``, ``vendo orgs``: accounts, on the server's own
data dir or database.

Like ``vendo serve`` (and unlike the client commands ``push`` and ``run``) these open
the store directly, from ``--data-dir``/``VENDO_DATA_DIR`` or ``VENDO_DATABASE_URL``:
they are how the person who runs the server adds people, whether or not it is running.
A running server sees their changes on its next request (the data dir's cache stamp,
see ``vendo.store.database.Database.changed``). Tokens are printed once, on creation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vendo.cli.options import data_dir_option

if TYPE_CHECKING:
    from vendo.store import Store

__all__ = ["orgs", "tokens", "users"]


@contextmanager
def _store(data_dir: Path | None) -> Iterator[Store]:
    """The store of the data dir (or VENDO_DATABASE_URL), migrated; an expected
    failure (no such user, a name taken, a bad name) ends in one line."""
    from vendo.config import Settings
    from vendo.errors import VendoError
    from vendo.store import Store

    overrides: dict[str, Any] = {} if data_dir is None else {"data_dir": data_dir}
    settings = Settings(**overrides)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    store = Store.from_settings(Path(settings.data_dir), settings.database_url)
    try:
        yield store
    except VendoError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        store.close()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "never"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# --- vendo users -----------------------------------------------------------------------


@click.group("users")
def users() -> None:
    """Add and list the people who may use this server."""


@users.command("create")
@click.argument("username")
@click.option("--name", default="", help="Display name (default: the username).")
@click.option("--admin", is_flag=True, help="Make them an admin: they may do anything.")
@data_dir_option
def users_create(username: str, name: str, admin: bool, data_dir: Path | None) -> None:
    """Create a user and print their first API token (shown once)."""
    from vendo.store import check_username

    with _store(data_dir) as store:
        check_username(username)
        user = store.accounts.create_user(username, name=name, is_admin=admin)
        token = store.accounts.create_token(user.id, name="first")
    click.echo(f"Created {'admin ' if admin else ''}user {username}. Their API token:", err=True)
    click.echo(token)


@users.command("list")
@data_dir_option
def users_list(data_dir: Path | None) -> None:
    """List the users."""
    with _store(data_dir) as store:
        rows = [["USERNAME", "NAME", "ADMIN", "CREATED"]]
        for user in store.accounts.users("user"):
            admin = "yes" if user.is_admin else ""
            rows.append([user.username, user.name, admin, _when(user.created_at)])
    _table(rows)


# --- vendo tokens ----------------------------------------------------------------------


@click.group("tokens")
def tokens() -> None:
    """Create, list and revoke API tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for, shown by `tokens list`.")
@click.option("--org", default=None, help="An organization of theirs the token acts as.")
@data_dir_option
def tokens_create(username: str, name: str, org: str | None, data_dir: Path | None) -> None:
    """Create a token for a user and print it (shown once)."""
    with _store(data_dir) as store:
        user = store.accounts.named(username, "user")
        org_id = store.accounts.named(org, "organization").id if org else None
        row, token = store.accounts.issue_token(user.id, name=name, organization_id=org_id)
    scope = f" acting as {org}" if org else ""
    click.echo(f"Token {row.id} for {username}{scope}:", err=True)
    click.echo(token)


@tokens.command("list")
@click.argument("username")
@data_dir_option
def tokens_list(username: str, data_dir: Path | None) -> None:
    """List a user's tokens (not revoked): id, name, organization and times, never
    the token itself."""
    with _store(data_dir) as store:
        user = store.accounts.named(username, "user")
        rows = [["ID", "NAME", "ORG", "CREATED", "LAST USED"]]
        for row, org in store.accounts.tokens(user.id):
            rows.append(
                [
                    str(row.id),
                    row.name,
                    org or "",
                    _when(row.created_at),
                    _when(row.last_used_at),
                ]
            )
    _table(rows)


@tokens.command("revoke")
@click.argument("token_id", type=int)
@data_dir_option
def tokens_revoke(token_id: int, data_dir: Path | None) -> None:
    """Revoke a token (by the id `tokens list` shows): it stops working at once."""
    with _store(data_dir) as store:
        store.accounts.revoke_token(token_id)
    click.echo(f"Revoked token {token_id}.", err=True)


# --- vendo orgs ------------------------------------------------------------------------


@click.group("orgs")
def orgs() -> None:
    """Create organizations, which own models together, and add members."""


@orgs.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="The user who becomes its first owner.")
@data_dir_option
def orgs_create(name: str, owner: str, data_dir: Path | None) -> None:
    """Create an organization."""
    with _store(data_dir) as store:
        store.accounts.create_organization(name, owner)
    click.echo(f"Created organization {name}, owned by {owner}.", err=True)


@orgs.command("add-member")
@click.argument("org")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["member", "owner"]),
    default="member",
    show_default=True,
    help="Members see, push to and run the organization's models; owners may also delete them.",
)
@data_dir_option
def orgs_add_member(org: str, username: str, role: str, data_dir: Path | None) -> None:
    """Add a user to an organization (or change their role)."""
    with _store(data_dir) as store:
        store.accounts.add_member(org, username, role)
    click.echo(f"{username} is now {'an' if role == 'owner' else 'a'} {role} of {org}.", err=True)
