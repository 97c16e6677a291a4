"""``vendo usage``: an account's billed usage, as a table.

A client command (like ``vendo run``): it asks the server's ``GET /v1/usage`` rather
than reading the database, because the cost is the server's to work out (its hardware
catalogue and prices), a user without access to the database sees their own usage with
their token, and it works against a remote or scaled server alike.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vendo.cli.options import token_option, url_option

__all__ = ["parse_since", "usage"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, now: datetime | None = None) -> str:
    """``7d``, ``12h``, ``30m``, ``2w`` ago, or an ISO 8601 date/date-time as given."""
    found = _SPAN.match(value)
    if found is None:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: give a span such as 7d, 12h, 30m or 2w, or an ISO 8601 date"
            ) from None
        return value
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    try:
        start = (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    except OverflowError:
        raise click.BadParameter(f"{value!r} reaches back before year 1") from None
    return start.isoformat()


def _row(group: dict[str, Any], label: str) -> list[str]:
    return [
        label,
        f"{group['setup_seconds']:.1f}",
        f"{group['idle_seconds']:.1f}",
        f"{group['active_seconds']:.1f}",
        f"{group['total_seconds']:.1f}",
        f"{group['cost']:.6f}",
    ]


@click.command("usage")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help="Start of the period: a span back from now (7d, 12h, 30m, 2w) or an ISO 8601 date.",
)
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["day", "model", "hardware", "deployment"]),
    default="day",
    show_default=True,
    help="One row per day, model, hardware SKU or deployment.",
)
@click.option("--account", default=None, help="Another account's usage (admins only).")
@url_option
@token_option
def usage(
    since: str, group_by: str, account: str | None, url: str | None, token: str | None
) -> None:
    """Show billed seconds (setting up, idle, active) and cost, from the server."""
    from vendo.cli.remote import api_client, fail

    params = {"start": parse_since(since), "group_by": group_by}
    if account:
        params["account"] = account
    with api_client(url, token) as client:
        response = client.get("/v1/usage", params=params)
        fail(response)
        body = response.json()
    table = Table(
        group_by, "setup s", "idle s", "active s", "total s", "cost",
        title=f"Usage of {body['account']} from {body['start']} to {body['end']}",
        box=None,
    )  # fmt: skip
    for group in body["results"]:
        table.add_row(*_row(group, group["key"] or "-"))
    table.add_section()
    table.add_row(*_row(body["total"], "total"))
    Console(soft_wrap=True).print(table)
