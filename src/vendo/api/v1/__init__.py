"""Replicate's HTTP API under ``/v1`` (spec/replicate-api.md).

``routes()`` lists every route; ``vendo.app.create_app`` mounts them with the platform's
parts in ``app.state.platform`` (:class:`vendo.api.v1.context.Platform`).
"""

from __future__ import annotations

import importlib

from starlette.routing import BaseRoute

__all__ = ["routes"]

# Modules with a module-level ``routes`` list; ``push`` (model upload) is optional.
_MODULES = (
    "predictions",
    "trainings",
    "models",
    "builds",
    "files",
    "account",
    "catalog",
    "deployments",
    "tokens",
    "users",
    "usage",
)
_OPTIONAL = ("push",)


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for name in _MODULES:
        found.extend(importlib.import_module(f"vendo.api.v1.{name}").routes)
    for name in _OPTIONAL:
        try:
            module = importlib.import_module(f"vendo.api.v1.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"vendo.api.v1.{name}":
                raise
            continue
        found.extend(module.routes)
    return found
