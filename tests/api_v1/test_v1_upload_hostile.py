"""Hostile uploads (issue 9): metadata that is not strict JSON, nests too deep or holds
a NUL, and a file name holding a NUL, are a 422 naming the field, never a 500 (on
PostgreSQL they failed the insert), and leave no file behind."""

from __future__ import annotations

from typing import Any

import pytest
from api_v1_support import Api

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("nan", {}, {"metadata": '{"a": NaN}'}),
    ("deep", {}, {"metadata": "[" * 5000 + "]" * 5000}),
    ("nul-value", {}, {"metadata": '{"a": "x\\u0000"}'}),
    ("nul-key", {}, {"metadata": '{"a\\u0000": 1}'}),
    ("surrogate", {}, {"metadata": '{"a": "\\ud800"}'}),
    ("blob-nan", {"metadata": ("blob", b'{"a": Infinity}', "application/json")}, {}),
    ("filename-nul", {}, {"filename": "a\x00b.txt"}),
]


@pytest.mark.parametrize(("files", "data"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_a_hostile_upload_is_a_422_and_stores_nothing(
    api: Api, files: dict[str, Any], data: dict[str, Any]
) -> None:
    r = await api.client.post(
        "/v1/files",
        headers=api.alice,
        files={"content": ("hello.txt", b"hello", "text/plain"), **files},
        data=data,
    )
    assert r.status_code == 422, (r.status_code, r.text[:300])
    field = r.json()["invalid_fields"][0]["field"]
    assert field in ("metadata", "filename"), r.json()
    assert (await api.client.get("/v1/files", headers=api.alice)).json()["results"] == []
    ok = await api.client.post(
        "/v1/files",
        headers=api.alice,
        files={"content": ("hello.txt", b"hello", "text/plain")},
        data={"metadata": '{"k": "v"}'},
    )
    assert ok.status_code == 201 and ok.json()["metadata"] == {"k": "v"}, ok.text
