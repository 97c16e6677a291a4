"""The ``components.schemas`` of Vendo's own account routes (``/v1/tokens``,
``/v1/users``, ``/v1/organizations``), which Replicate's API does not have."""

from __future__ import annotations

from vendo.api.v1.openapi_schemas import TIME, Schema, page_of

__all__ = ["account_schemas"]

_USERNAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
_SHORT: Schema = {"type": "string", "maxLength": 200}
_ROLE: Schema = {"type": "string", "enum": ["owner", "member"]}


def _token(created: bool) -> Schema:
    properties: dict[str, Schema] = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "organization": {
            "type": ["string", "null"],
            "description": "the organization the token acts as; null: its user",
        },
        "created_at": TIME,
        "last_used_at": {
            "anyOf": [TIME, {"type": "null"}],
            "description": "written at most once a minute",
        },
    }
    required = list(properties)
    if created:
        properties["token"] = {"type": "string", "description": "shown this once only"}
        required.append("token")
    return {"type": "object", "required": required, "properties": properties}


def _user(created: bool) -> Schema:
    properties: dict[str, Schema] = {
        "type": {"type": "string", "enum": ["user"]},
        "username": {"type": "string"},
        "name": {"type": "string"},
        "admin": {"type": "boolean"},
        "created_at": TIME,
    }
    required = list(properties)
    if created:
        properties["token"] = {"type": "string", "description": "their first token, shown once"}
        required.append("token")
    return {"type": "object", "required": required, "properties": properties}


def _organization() -> Schema:
    member: Schema = {
        "type": "object",
        "required": ["username", "role"],
        "properties": {"username": {"type": "string"}, "role": _ROLE},
    }
    return {
        "type": "object",
        "required": ["type", "username", "name", "created_at", "members"],
        "properties": {
            "type": {"type": "string", "enum": ["organization"]},
            "username": {"type": "string"},
            "name": {"type": "string"},
            "created_at": TIME,
            "members": {"type": "array", "items": member},
        },
    }


def _body(required: list[str], properties: dict[str, Schema]) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def account_schemas() -> dict[str, Schema]:
    return {
        "Token": _token(False),
        "TokenCreated": _token(True),
        "TokenCreate": _body([], {"name": _SHORT, "organization": _USERNAME}),
        "TokenPage": page_of("Token"),
        "User": _user(False),
        "UserCreated": _user(True),
        "UserCreate": _body(
            ["username"], {"username": _USERNAME, "name": _SHORT, "admin": {"type": "boolean"}}
        ),
        "UserPage": page_of("User"),
        "Organization": _organization(),
        "OrganizationCreate": _body(["name", "owner"], {"name": _USERNAME, "owner": _USERNAME}),
        "OrganizationPage": page_of("Organization"),
        "MemberAdd": _body(["username"], {"username": _USERNAME, "role": _ROLE}),
    }
