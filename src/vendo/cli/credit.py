"""``vendo credit``: set or show an account's credit, on the server's own database.

Like ``vendo serve``, it opens the store of the data dir (``--data-dir``) or
``VENDO_DATABASE_URL``: it is the operator's command, needing no admin token. A server
running on the same database sees a new credit within ``VENDO_CREDIT_CHECK_INTERVAL``
seconds (``PUT /v1/accounts/{name}/credit`` through the server applies at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vendo.cli.options import data_dir_option

if TYPE_CHECKING:
    from vendo.hardware import Catalog
    from vendo.store import Store, UserRow
    from vendo.store.usage import Balance

__all__ = ["credit"]

UNLIMITED = ("unlimited", "none")


@contextmanager
def _store(data_dir: Path | None) -> Iterator[Store]:
    from vendo.config import Settings
    from vendo.errors import VendoError
    from vendo.store import Store

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    try:
        store = Store.from_settings(Path(settings.data_dir), settings.database_url)
    except (VendoError, OSError) as exc:
        raise click.ClickException(f"cannot open the database: {exc}") from None
    try:
        yield store
    finally:
        store.close()


def _account(store: Store, name: str) -> UserRow:
    found = store.accounts.user_named(name)
    if found is None:
        raise click.ClickException(f"no account named {name!r}")
    return found


def _prices(data_dir: Path | None) -> Catalog:
    from vendo.config import Settings
    from vendo.errors import ConfigError
    from vendo.hardware import load_catalog

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    try:
        return load_catalog(settings.hardware_file)
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from None


def _describe(name: str, balance: Balance) -> str:
    if balance.amount is None:
        return f"{name}: unlimited credit"
    return f"{name}: credit {balance.amount:f} set {balance.set_at:%Y-%m-%d %H:%M:%S} UTC, " + (
        f"{balance.remaining:.6f} left"
    )


@click.group("credit")
def credit() -> None:
    """Set or show an account's credit (unset: unlimited)."""


@credit.command("set")
@click.argument("account")
@click.argument("amount")
@data_dir_option
def set_credit(account: str, amount: str, data_dir: Path | None) -> None:
    """Set ACCOUNT's credit to AMOUNT from now on (`unlimited` removes the limit)."""
    from vendo.api.v1.usage import parse_amount
    from vendo.errors import InvalidInput

    try:
        value = None if amount.lower() in UNLIMITED else parse_amount(amount, "AMOUNT")
    except InvalidInput as exc:
        raise click.BadParameter(exc.detail.removeprefix("AMOUNT: ")) from None
    prices = _prices(data_dir)
    with _store(data_dir) as store:
        user = _account(store, account)
        store.usage.set_credit(user.id, value)
        click.echo(_describe(account, store.usage.balance(user.id, prices)))


@credit.command("show")
@click.argument("account")
@data_dir_option
def show_credit(account: str, data_dir: Path | None) -> None:
    """Show ACCOUNT's credit and what is left of it."""
    prices = _prices(data_dir)
    with _store(data_dir) as store:
        user = _account(store, account)
        click.echo(_describe(account, store.usage.balance(user.id, prices)))
