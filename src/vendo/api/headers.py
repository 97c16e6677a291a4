"""A request's headers, read once per request."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["header"]


def header(request: Request, name: str, default: str = "") -> str:
    """The request's header ``name`` (lowercase; the first if repeated), else
    ``default``. Starlette's ``request.headers.get`` scans the raw list each time; a
    prediction request asks for half a dozen, so they are made a dict once."""
    scope = request.scope
    found: dict[str, str] | None = scope.get("vendo.headers")
    if found is None:
        # reversed: the first of a repeated header wins, as with request.headers
        found = scope["vendo.headers"] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])
        }
    return found.get(name, default)
