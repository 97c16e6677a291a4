"""Usage and credit routes (Vendo's own; Replicate has no usage API).

- ``GET /v1/usage?start=&end=&group_by=day|model|hardware|deployment[&account=]``: the
  caller's billed seconds and cost per group (an admin may name any ``account``);
- ``GET /v1/accounts/{username}/credit``: an account's credit and what is left (the
  account itself or an admin);
- ``PUT /v1/accounts/{username}/credit`` ``{"amount": 12.5}`` (``null``: unlimited):
  admin only.

What is billed is decided in :mod:`vendo.store.usage`; see docs/usage.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import Caller, call, caller, iso, json_body, parse_time, platform
from vendo.api.v1.policy import owns
from vendo.errors import FieldError, Forbidden, InvalidInput, NotFound
from vendo.store import UserRow, utcnow
from vendo.store.usage import GROUPS, Balance, UsageGroup

__all__ = ["MAX_CREDIT", "routes"]

DEFAULT_PERIOD = timedelta(days=30)
MAX_CREDIT = Decimal("1e12")


async def account_for(request: Request, who: Caller, username: str | None) -> UserRow:
    """The account whose records the caller asks for: the one its token acts as (no
    name), or a named one within its reach (see :mod:`~vendo.api.v1.policy`: its own,
    its organizations', any for the admin); another's is 404, as if it did not exist."""
    if not username:
        return who.account
    found: UserRow | None = await call(platform(request).store.accounts.user_named, username)
    if found is None or not owns(who, found.id):
        raise NotFound(f"account {username} not found")
    return found


def _bad(field: str, description: str) -> InvalidInput:
    return InvalidInput([FieldError(field, "invalid", description)])


def _period(params: Any) -> tuple[datetime, datetime]:
    end = parse_time("end", params.get("end")) or utcnow()
    start = parse_time("start", params.get("start")) or end - DEFAULT_PERIOD
    if start >= end:
        raise _bad("start", f"start ({iso(start)}) must be before end ({iso(end)})")
    return start, end


async def get_usage(request: Request) -> Response:
    """The account's billed usage in a period, per group."""
    who = await caller(request)
    params = request.query_params
    group_by = params.get("group_by") or "day"
    if group_by not in GROUPS:
        raise _bad("group_by", f"must be one of {', '.join(GROUPS)}, got {group_by[:40]!r}")
    start, end = _period(params)
    account = await account_for(request, who, params.get("account"))
    p = platform(request)
    groups: list[UsageGroup] = await call(
        p.store.usage.report, account.id, start, end, group_by, p.hardware.catalog
    )
    total = UsageGroup(None)
    for group in groups:
        for state, seconds in group.seconds.items():
            total.seconds[state] += seconds
        total.cost += group.cost
    return JSONResponse(
        {
            "account": account.username,
            "start": iso(start),
            "end": iso(end),
            "group_by": group_by,
            "results": [g.as_dict() for g in groups],
            "total": total.as_dict(),
        }
    )


def _credit_json(account: UserRow, balance: Balance) -> dict[str, Any]:
    def number(value: Decimal | None) -> float | None:
        return None if value is None else float(round(value, 6))

    return {
        "account": account.username,
        "credit": number(balance.amount),
        "remaining": number(balance.remaining),
        "set_at": iso(balance.set_at),
    }


async def get_credit(request: Request) -> Response:
    """An account's credit and what is left of it."""
    who = await caller(request)
    account = await account_for(request, who, request.path_params["username"])
    gate = platform(request).credit
    balance = await call(gate.balance, account.id)
    return JSONResponse(_credit_json(account, balance))


def parse_amount(value: Any, field: str = "amount") -> Decimal | None:
    """A credit amount: a number from 0 to 10^12, or None (unlimited)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad(field, "must be a number (0 or more) or null for unlimited")
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise _bad(field, f"must be a number, got {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_CREDIT:
        raise _bad(field, f"must be from 0 to {MAX_CREDIT:f}, got {str(value)[:40]}")
    return amount.quantize(Decimal("0.000001"))


async def put_credit(request: Request) -> Response:
    """Set an account's credit (admin)."""
    who = await caller(request)
    account = await account_for(request, who, request.path_params["username"])
    if not who.is_admin:
        raise Forbidden("only an admin may set an account's credit")
    body = await json_body(request)
    if "amount" not in body:
        raise _bad("amount", "is required: a number (0 or more), or null for unlimited")
    amount = parse_amount(body["amount"])
    balance = await call(platform(request).credit.set, account.id, amount)
    return JSONResponse(_credit_json(account, balance))


routes = [
    Route("/v1/usage", get_usage, methods=["GET"]),
    Route("/v1/accounts/{username}/credit", get_credit, methods=["GET"]),
    Route("/v1/accounts/{username}/credit", put_credit, methods=["PUT"]),
]
