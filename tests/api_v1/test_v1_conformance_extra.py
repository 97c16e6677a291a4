"""Replicate checklist clauses (spec/replicate-api.md §9) that no other test covered.

Item 19: ``next`` is followed across pages by both official clients; ``created_before``
filters.  Item 14: an upload from the JS client is accepted (its ``files.create``, which
``run()`` would otherwise hide behind a data-URI fallback).  Items 16 and 17: an output
URL past its expiry is refused, and the next GET of the prediction signs a fresh one.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import SCHEMA, VERSION, Api, EchoScheduler

from support import serve_in_thread
from vendo.app import create_app
from vendo.config import Settings
from vendo.store import Store

TOKEN = "cf-admin-token"
JS_DIR = Path(__file__).parents[1] / "js"
PAGE = 100  # the API's page size (spec §1)


@dataclass
class CfLive:
    url: str
    headers: dict[str, str]


@pytest.fixture
def cf_live(tmp_path: Path) -> Iterator[CfLive]:
    """The app on a real port in a thread, no scheduler (predictions stay queued), with
    one model ``admin/hello`` whose version is :data:`VERSION`."""
    data_dir = tmp_path / "data"
    store = Store.from_settings(data_dir, None)
    try:
        admin, _ = store.accounts.ensure_admin(TOKEN)
        model = store.catalog.create_model(admin.id, "hello", visibility="public", hardware="cpu")
        store.catalog.create_version(model.id, VERSION, openapi_schema=SCHEMA, cog_version="0.13.7")
    finally:
        store.close()
    settings = Settings(data_dir=data_dir, api_token=TOKEN, _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings, run_scheduler=False)
    with serve_in_thread(app) as url:
        yield CfLive(url, {"Authorization": f"Bearer {TOKEN}"})


def cf_create_many(live: CfLive, count: int) -> list[dict[str, Any]]:
    """``count`` queued predictions, oldest first."""
    created = []
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=30) as c:
        for i in range(count):
            r = c.post("/v1/predictions", json={"version": VERSION, "input": {"text": str(i)}})
            assert r.status_code == 201, r.text
            created.append(r.json())
    return created


def test_cf_next_is_followed_by_both_clients_and_created_before_filters(
    cf_live: CfLive, node_client: str, replicate_client: Any
) -> None:
    pytest.importorskip("replicate")
    from replicate.pagination import paginate

    created = cf_create_many(cf_live, PAGE + 5)
    newest_first = [p["id"] for p in reversed(created)]

    # Python 1.0.7 sends `next` back as the request path
    client = replicate_client(TOKEN, cf_live.url)
    pages = list(paginate(client.predictions.list))
    assert [len(page.results) for page in pages] == [PAGE, 5]
    assert [p.id for page in pages for p in page.results] == newest_first

    # JS 1.4.0 follows `next` as an absolute URL; the same script uploads a Buffer
    env = {
        **os.environ,
        "VENDO_JS_DIR": str(JS_DIR),
        "VENDO_TOKEN": TOKEN,
        "VENDO_BASE": cf_live.url,
    }
    script = Path(__file__).parent / "js" / "cf_pages_files.mjs"
    done = subprocess.run(
        [node_client, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["pages"] == 2
    assert results["ids"] == newest_first

    # item 14: the JS upload was accepted as a File with the keys 1.0.7 needs
    file = results["file"]
    assert file["size"] == len(b"bytes from js") and file["name"]
    assert file["etag"] == file["checksums"]["md5"] and file["checksums"]["sha256"]
    assert file["expires_at"] and file["metadata"] == {"purpose": "cf"}
    with httpx.Client(base_url=cf_live.url, headers=cf_live.headers, timeout=30) as c:
        assert c.get(f"/v1/files/{file['id']}").json()["id"] == file["id"]

        # created_before keeps strictly older predictions only, across pages too
        pivot = created[50]
        r = c.get("/v1/predictions", params={"created_before": pivot["created_at"]})
        assert [p["id"] for p in r.json()["results"]] == newest_first[-50:]
        r = c.get("/v1/predictions", params={"created_after": pivot["created_at"]})
        assert [p["id"] for p in r.json()["results"]] == newest_first[: PAGE + 5 - 51]


class TestCfOutputUrls:
    @pytest.fixture
    def scheduler_factory(self) -> Any:
        return EchoScheduler

    async def test_cf_expired_output_url_is_refused_and_get_signs_a_fresh_one(
        self, api: Api
    ) -> None:
        png = b"\x89PNG\r\n\x1a\n" + b"1" * 64
        source = "data:image/png;base64," + base64.b64encode(png).decode()
        storage = api.platform.storage
        storage.signed_url_expiry = -10  # every URL signed from now on is already expired
        r = await api.client.post(
            "/v1/predictions",
            headers={**api.alice, "Prefer": "wait"},
            json={"version": VERSION, "input": {"text": "x", "image": source}},
        )
        body = r.json()
        assert body["status"] == "succeeded", body
        expired = body["output"]
        got = await api.client.get(expired)
        assert got.status_code in (403, 404)
        assert got.content != png

        storage.signed_url_expiry = 3600.0
        again = (await api.client.get(body["urls"]["get"], headers=api.alice)).json()
        fresh = again["output"]
        assert fresh != expired  # re-signed on GET
        got = await api.client.get(fresh)
        assert got.status_code == 200 and got.content == png
        # and the list view signs its output URLs too
        listed = (await api.client.get("/v1/predictions", headers=api.alice)).json()
        assert (await api.client.get(listed["results"][0]["output"])).content == png

    async def test_cf_cancel_of_a_succeeded_prediction_is_200_unchanged(self, api: Api) -> None:
        r = await api.client.post(
            "/v1/predictions",
            headers={**api.alice, "Prefer": "wait"},
            json={"version": VERSION, "input": {"text": "done"}},
        )
        body = r.json()
        assert body["status"] == "succeeded", body
        canceled = await api.client.post(body["urls"]["cancel"], headers=api.alice)
        assert canceled.status_code == 200
        got = (await api.client.get(body["urls"]["get"], headers=api.alice)).json()
        assert canceled.json() == got
        assert got["status"] == "succeeded" and got["output"] == "done"


async def test_cf_urls_are_absolute_and_never_null_in_every_view(api: Api) -> None:
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": {"text": "u"}}
    )
    pid = r.json()["id"]
    base = "http://testserver"
    expected = {
        "get": f"{base}/v1/predictions/{pid}",
        "cancel": f"{base}/v1/predictions/{pid}/cancel",
        "web": f"{base}/p/{pid}",
    }
    got = (await api.client.get(f"/v1/predictions/{pid}", headers=api.alice)).json()
    listed = (await api.client.get("/v1/predictions", headers=api.alice)).json()["results"][0]
    canceled = (await api.client.post(expected["cancel"], headers=api.alice)).json()
    for view in (r.json(), got, listed, canceled):
        assert view["urls"] == expected  # no stream key (not streamable), no null value
    for key in ("error", "output", "started_at", "deployment"):
        assert key in listed and key in canceled
