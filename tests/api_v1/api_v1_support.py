"""Shared constants and types of the /v1 tests (tests are not a package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from vendo.api.v1.context import Platform

ADMIN_TOKEN = "admin-token"
VERSION = "ab" * 32
PRIVATE_VERSION = "cd" * 32

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "Cog", "version": "0.1.0"},
    "paths": {},
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "title": "Text", "x-order": 0},
                    "count": {
                        "type": "integer",
                        "title": "Count",
                        "default": 1,
                        "minimum": 1,
                        "maximum": 10,
                        "x-order": 1,
                    },
                    "image": {"type": "string", "format": "uri", "x-order": 2},
                    "api_key": {
                        "type": "string",
                        "format": "password",
                        "x-cog-secret": True,
                        "x-order": 3,
                    },
                },
            },
            "Output": {"type": "string", "title": "Output"},
        }
    },
}


@dataclass
class Api:
    client: httpx.AsyncClient
    platform: Platform
    admin: dict[str, str]  # auth headers
    alice: dict[str, str]
    bob: dict[str, str]
