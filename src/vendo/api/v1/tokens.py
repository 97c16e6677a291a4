"""``/v1/tokens``: a user's own API tokens (Vendo's addition: Replicate has no public
API for them). A token is shown once, when it is created; lists show its id, name,
organization and times, never the token."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import call, caller, iso, json_body, page, platform
from vendo.api.v1.policy import may_manage_token
from vendo.errors import FieldError, InvalidInput, NotFound
from vendo.store import TokenRow

__all__ = ["routes", "token_json"]

_FIELDS = ("name", "organization")


def token_json(row: TokenRow, organization: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "organization": organization,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
    }


async def list_tokens(request: Request) -> Response:
    """List your tokens (never the tokens themselves)."""
    who = await caller(request)
    scope = who.organization.id if who.organization is not None else None
    rows = await call(platform(request).store.accounts.tokens, who.user.id, scope)
    return page(request, [token_json(row, org) for row, org in rows], None, None)


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(
            [FieldError(name, "type", f"{name} must be a string of at most {limit} characters")]
        )
    return value


async def create_token(request: Request) -> Response:
    """Create a token for yourself, optionally scoped to one of your organizations."""
    who = await caller(request)
    body = await json_body(request)
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise InvalidInput(
            [FieldError(k, "unknown", f"allowed fields: {', '.join(_FIELDS)}") for k in unknown]
        )
    name = _text(body, "name", 200) or ""
    org_name = _text(body, "organization", 64)
    accounts = platform(request).store.accounts
    organization = who.organization
    if org_name is not None:
        found = await call(accounts.user_named, org_name)
        if found is None or found.type != "organization" or found.id not in who.reach:
            raise NotFound(f"organization {org_name!r} not found among yours")
        organization = found
    org_id = organization.id if organization is not None else None
    row, token = await call(
        lambda: accounts.issue_token(who.user.id, name=name, organization_id=org_id)
    )
    org_username = organization.username if organization is not None else None
    return JSONResponse({**token_json(row, org_username), "token": token}, status_code=201)


async def revoke_token(request: Request) -> Response:
    """Revoke a token: it stops working at once."""
    who = await caller(request)
    raw = request.path_params["id"]
    accounts = platform(request).store.accounts
    row = (
        await call(accounts.token, int(raw))
        if raw.isascii() and raw.isdigit() and len(raw) < 18
        else None
    )
    if row is None or row.revoked_at is not None or not may_manage_token(who, row):
        raise NotFound(f"token {raw} not found")
    await call(accounts.revoke_token, row.id)
    return Response(status_code=204)


routes = [
    Route("/v1/tokens", list_tokens, methods=["GET"]),
    Route("/v1/tokens", create_token, methods=["POST"]),
    Route("/v1/tokens/{id}", revoke_token, methods=["DELETE"]),
]
