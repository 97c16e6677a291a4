"""Outputs JSON finds awkward go through a sync prediction, its row and its read-back:
NaN and the infinities (which JSON cannot say) as null, integers beyond 64 bits with
every digit, text beyond ASCII as it was. In-process app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_v1_support import Api, add_local_version, echo_api

VERSION = "e1" * 32
AWKWARD = "a7" * 32


@pytest.fixture
async def api(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    async with echo_api(tmp_path, db_url, VERSION, raise_app_exceptions=True) as api:
        model = api.platform.store.catalog.model("alice", "echo")
        assert model is not None
        add_local_version(api.platform.store, model.id, AWKWARD, "api_json_output")
        yield api


async def _run_and_read_back(api: Api, text: str) -> tuple[Any, Any]:
    reply = await api.client.post(
        "/v1/predictions",
        json={"version": AWKWARD, "input": {"text": text}},
        headers={**api.bob, "Prefer": "wait"},
        timeout=60,
    )
    assert reply.status_code == 201, reply.text
    data = reply.json()
    assert data["status"] == "succeeded", (data["error"], data["logs"])
    got = await api.client.get(f"/v1/predictions/{data['id']}", headers=api.bob)
    assert got.status_code == 200, got.text
    return data["output"], got.json()["output"]


async def test_nan_and_the_infinities_are_answered_and_stored_as_null(api: Api) -> None:
    answered, stored = await _run_and_read_back(api, "not-finite")
    assert answered == stored == {"nan": None, "inf": None, "minus_inf": None}


async def test_integers_beyond_64_bits_keep_every_digit(api: Api) -> None:
    answered, stored = await _run_and_read_back(api, "big-int")
    assert answered == stored == {"big": 2**70, "small": -(2**70), "list": [2**64, 1.5]}


async def test_text_beyond_ascii_comes_back_as_it_was(api: Api) -> None:
    answered, stored = await _run_and_read_back(api, "unicode")
    assert answered == stored == {"text": "héllo ✓ 雨", "emoji": "🙂"}
