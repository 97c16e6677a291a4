"""The address policy through ``POST /v1/predictions``: a webhook or an input file URL at
a refused address, in any host form, is a 422 naming the field, and nothing is run."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from api_v1_support import VERSION, Api

from support import http_server

# A few forms of each decision (vendo.files.addresses is tested range by range and form
# by form in tests/files/test_address_policy.py).
# private and loopback: refused once VENDO_ALLOW_PRIVATE_URLS is off
PRIVATE = ["2130706433", "0x7f000001", "[::1]", "localhost"]
# refused whatever the setting
NEVER = ["0.0.0.0", "[::]", "0xa9fea9fe", "192.0.0.192", "[64:ff9b::a9fe:a9fe]"]
NEVER += ["metadata.google.internal"]


@pytest.fixture
def port() -> Iterator[int]:
    """A server on 127.0.0.1 that answers every request: a URL the policy let through
    would be downloaded (or called), not fail to connect."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-length", "4")
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Handler) as server:
        yield server.server_address[1]


def _body(field: str, host: str, port: int) -> dict[str, Any]:
    url = f"http://{host}:{port}/x.png"
    body: dict[str, Any] = {"version": VERSION, "input": {"text": "x"}}
    if field == "webhook":
        body["webhook"] = url
    else:
        body["input"]["image"] = url
    return body


async def _refused(api: Api, field: str, host: str, port: int) -> None:
    body = _body(field, host, port)
    r = await api.client.post("/v1/predictions", headers=api.alice, json=body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert [f["field"] for f in problem.get("invalid_fields", [])] == [field], problem
    listed = await api.client.get("/v1/predictions", headers=api.alice)
    assert listed.json()["results"] == []


@pytest.mark.parametrize("field", ["webhook", "image"])
@pytest.mark.parametrize("host", PRIVATE)
async def test_private_forms_refused_when_private_urls_are_off(
    api: Api, field: str, host: str, port: int
) -> None:
    api.platform.settings.allow_private_urls = False
    await _refused(api, field, host, port)


@pytest.mark.parametrize("field", ["webhook", "image"])
@pytest.mark.parametrize("host", NEVER)
async def test_special_purpose_forms_always_refused(
    api: Api, field: str, host: str, port: int
) -> None:
    assert api.platform.settings.allow_private_urls  # the default
    await _refused(api, field, host, port)


async def test_loopback_forms_allowed_by_default(api: Api, port: int) -> None:
    for host in ("127.0.0.1", "2130706433", "0x7f000001", "127.1"):
        r = await api.client.post(
            "/v1/predictions", headers=api.alice, json=_body("image", host, port)
        )
        assert r.status_code == 201, r.text
        r = await api.client.post(
            "/v1/predictions", headers=api.alice, json=_body("webhook", host, port)
        )
        assert r.status_code == 201, r.text


async def test_the_legacy_webhook_completed_field_follows_the_policy(api: Api, port: int) -> None:
    body = {"version": VERSION, "input": {"text": "x"}}
    body["webhook_completed"] = f"http://0.0.0.0:{port}/hook"
    r = await api.client.post("/v1/predictions", headers=api.alice, json=body)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["invalid_fields"]] == ["webhook_completed"]
