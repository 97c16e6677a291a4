"""One route per path: ``OPTIONS`` and ``405 Method Not Allowed`` name every method a
path serves.

Routes are declared one per method (each handler with its own docstring, which the
OpenAPI document uses). Starlette would then answer a wrong method with the ``Allow``
header of whichever declaration it met first (``DELETE /v1/predictions`` said
``Allow: POST`` although ``GET`` is served too) and had no ``OPTIONS`` at all.
:func:`by_path` groups the declarations of one path into a :class:`PathRoute` that
dispatches on the method, answers ``OPTIONS`` with ``204`` and a wrong method with
``405``, both with the full ``Allow`` list (RFC 9110 §9.3.7, §15.5.6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["METHOD_ORDER", "PathRoute", "allow_header", "by_path"]

# The order methods are listed in ``Allow``: reads first, then writes, then the rest.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "QUERY", "OPTIONS")


def allow_header(methods: Iterable[str]) -> str:
    """``GET, HEAD, POST, OPTIONS``: the methods in a fixed order, OPTIONS always last."""
    names = {m.upper() for m in methods} | {"OPTIONS"}
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return ", ".join(sorted(names, key=lambda m: (rank.get(m, len(rank) - 1), m)))


class PathRoute(Route):
    """All the methods of one path. ``handlers`` maps each method (``HEAD`` goes with
    ``GET``, as Starlette does) to the ASGI app of the declaration that serves it."""

    def __init__(self, path: str, declarations: Sequence[Route]) -> None:
        handlers: dict[str, ASGIApp] = {}
        for declared in declarations:
            for method in sorted(declared.methods or ()):
                if method in handlers:
                    raise ValueError(f"{method} {path} is declared twice")
                handlers[method] = declared.app
        first = declarations[0]
        super().__init__(path, first.endpoint, name=first.name)
        # Every method matches the path: the dispatch below answers the wrong ones, so
        # the router never falls back to a declaration that knows only its own method.
        self.methods = None
        self.handlers = handlers
        self.allow = allow_header(handlers)
        self.app = self._dispatch

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        handler = self.handlers.get(method)
        if handler is not None:
            await handler(scope, receive, send)
            return
        if method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": self.allow})
            await response(scope, receive, send)
            return
        # Raised, not answered: the app's exception handler gives it the app's error shape.
        raise HTTPException(405, headers={"Allow": self.allow})


def by_path(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the plain ``Route`` declarations of each path merged into one
    :class:`PathRoute`, at the position of the path's first declaration. Other routes
    (mounts, websockets) pass through unchanged."""
    groups: dict[str, list[Route]] = {}
    merged: list[BaseRoute] = []
    for route in routes:
        if type(route) is not Route or route.methods is None:
            # a route that serves every method answers OPTIONS itself
            merged.append(route)
            continue
        if route.path not in groups:
            groups[route.path] = []
            merged.append(route)  # a placeholder, replaced below
        groups[route.path].append(route)
    return [
        PathRoute(r.path, groups[r.path])
        if type(r) is Route and r.methods is not None and r.path in groups
        else r
        for r in merged
    ]
