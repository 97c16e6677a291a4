"""``/v1/users`` and ``/v1/organizations``: the admin's management of accounts
(Vendo's addition; ``vendo users`` and ``vendo orgs`` do the same on the command
line). Every route here is the admin's only: anyone else gets 403."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import Platform, call, caller, iso, json_body, page, platform
from vendo.api.v1.policy import require_admin
from vendo.errors import FieldError, InvalidInput
from vendo.store import ROLES, UserRow, check_username

__all__ = ["organization_json", "routes", "user_json"]


def user_json(user: UserRow) -> dict[str, Any]:
    return {
        "type": user.type,
        "username": user.username,
        "name": user.name or user.username,
        "admin": bool(user.is_admin),
        "created_at": iso(user.created_at),
    }


def organization_json(org: UserRow, members: list[tuple[UserRow, str]]) -> dict[str, Any]:
    return {
        "type": org.type,
        "username": org.username,
        "name": org.name or org.username,
        "created_at": iso(org.created_at),
        "members": [{"username": user.username, "role": role} for user, role in members],
    }


async def _admin_body(request: Request, allowed: dict[str, type]) -> dict[str, Any]:
    """The admin's request body, each field of ``allowed`` of its type."""
    require_admin(await caller(request), "manage users and organizations")
    body = await json_body(request)
    errors = [
        FieldError(k, "unknown", f"allowed fields: {', '.join(allowed)}")
        for k in sorted(set(body) - set(allowed))
    ]
    for name, kind in allowed.items():
        value = body.get(name)
        if value is not None and (
            type(value) is not kind or (isinstance(value, str) and len(value) > 200)
        ):
            what = "true or false" if kind is bool else "a string of at most 200 characters"
            errors.append(FieldError(name, "type", f"{name} must be {what}"))
    if errors:
        raise InvalidInput(errors)
    return body


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not value:
        raise InvalidInput([FieldError(name, "missing", f"{name} is required")])
    check_username(str(value), name)
    return str(value)


async def list_users(request: Request) -> Response:
    """List the users (the admin only)."""
    require_admin(await caller(request), "list users")
    users = await call(platform(request).store.accounts.users, "user")
    return page(request, [user_json(u) for u in users], None, None)


async def create_user(request: Request) -> Response:
    """Create a user and their first token, shown once (the admin only)."""
    body = await _admin_body(request, {"username": str, "name": str, "admin": bool})
    username = _required(body, "username")
    accounts = platform(request).store.accounts

    def create() -> tuple[UserRow, str]:
        user = accounts.create_user(
            username, name=body.get("name") or "", is_admin=bool(body.get("admin"))
        )
        return user, accounts.create_token(user.id, name="first")

    user, token = await call(create)
    return JSONResponse({**user_json(user), "token": token}, status_code=201)


async def _organization(p: Platform, org: UserRow) -> dict[str, Any]:
    return organization_json(org, await call(p.store.accounts.members, org.id))


async def list_organizations(request: Request) -> Response:
    """List the organizations and their members (the admin only)."""
    require_admin(await caller(request), "list organizations")
    p = platform(request)
    orgs = await call(p.store.accounts.users, "organization")
    return page(request, [await _organization(p, org) for org in orgs], None, None)


async def create_organization(request: Request) -> Response:
    """Create an organization with its first owner (the admin only)."""
    body = await _admin_body(request, {"name": str, "owner": str})
    name, owner = _required(body, "name"), _required(body, "owner")
    p = platform(request)
    org = await call(p.store.accounts.create_organization, name, owner)
    return JSONResponse(await _organization(p, org), status_code=201)


async def add_member(request: Request) -> Response:
    """Add a member to an organization, or change their role (the admin only)."""
    body = await _admin_body(request, {"username": str, "role": str})
    username = _required(body, "username")
    role = body.get("role") or "member"
    if role not in ROLES:
        raise InvalidInput([FieldError("role", "enum", f"role must be one of {', '.join(ROLES)}")])
    p = platform(request)
    accounts = p.store.accounts
    name = request.path_params["name"]
    await call(accounts.add_member, name, username, role)
    org = await call(accounts.named, name, "organization")
    return JSONResponse(await _organization(p, org))


routes = [
    Route("/v1/users", list_users, methods=["GET"]),
    Route("/v1/users", create_user, methods=["POST"]),
    Route("/v1/organizations", list_organizations, methods=["GET"]),
    Route("/v1/organizations", create_organization, methods=["POST"]),
    Route("/v1/organizations/{name}/members", add_member, methods=["POST"]),
]
