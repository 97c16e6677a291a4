from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import pytest
from api_v1_support import VERSION, Api, EchoScheduler

import vendo.app
from vendo.api.v1.session import COOKIE, CSRF_HEADER, csrf_for
from vendo.app import sweep_once
from vendo.status import pool_key
from vendo.store import utcnow

PREDICTION_KEYS = {
    "id",
    "model",
    "version",
    "input",
    "output",
    "logs",
    "error",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "urls",
    "metrics",
    "data_removed",
    "source",
    "deployment",
}


def check_shape(body: dict[str, Any], base: str = "http://testserver") -> None:
    assert set(body) >= PREDICTION_KEYS
    assert len(body["id"]) == 26
    assert body["model"] == "alice/hello" and body["version"] == VERSION
    for key, url in body["urls"].items():
        assert isinstance(url, str) and url.startswith(base), key
    assert body["urls"]["get"] == f"{base}/v1/predictions/{body['id']}"
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize(
    "version", [VERSION, f"alice/hello:{VERSION}", "alice/hello"], ids=["id", "o/n:id", "o/n"]
)
async def test_create_queues_with_201_starting(api: Api, version: str) -> None:
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={"version": version, "input": {"text": "hi", "api_key": "s3cret"}},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    check_shape(body)
    assert body["status"] == "starting" and body["output"] is None and body["logs"] == ""
    assert body["input"] == {"text": "hi", "api_key": "**********"}
    assert body["metrics"] is None and body["data_removed"] is False
    assert body["source"] == "api" and body["deployment"] is None
    assert "deadline" not in body and "stream" not in body["urls"]
    assert r.headers["location"] == body["urls"]["get"]
    assert "preference-applied" not in r.headers
    row = api.platform.store.predictions.get(body["id"])
    # the secret is stored sealed (vendo.store.sealing), and opens back to the value
    assert row is not None and "s3cret" not in repr(row.run_input)
    assert api.platform.secrets is not None
    assert api.platform.secrets.open(row.run_input) == {"text": "hi", "api_key": "s3cret"}
    got = await api.client.get(f"/v1/predictions/{body['id']}", headers=api.alice)
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    # other users cannot see it
    other = await api.client.get(f"/v1/predictions/{body['id']}", headers=api.bob)
    assert other.status_code == 404


async def test_the_web_sessions_predictions_record_source_web(api: Api) -> None:
    """A prediction made through the pages' session cookie says ``source: web`` (as
    Replicate's web playground's do); one made with a bearer token says ``api``."""
    token = api.alice["Authorization"].removeprefix("Bearer ")
    session = {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: csrf_for(token)}
    made = {}
    for source, headers in (("web", session), ("api", api.alice)):
        r = await api.client.post(
            "/v1/predictions", headers=headers, json={"version": VERSION, "input": {"text": "x"}}
        )
        assert r.status_code == 201, r.text
        assert r.json()["source"] == source
        made[source] = r.json()["id"]
    for source, prediction_id in made.items():
        got = await api.client.get(f"/v1/predictions/{prediction_id}", headers=api.alice)
        assert got.json()["source"] == source
    # the cookie alone (another site's forged request) makes nothing
    forged = await api.client.post(
        "/v1/predictions", headers={"Cookie": f"{COOKIE}={token}"}, json={"version": VERSION}
    )
    assert forged.status_code == 401


async def test_a_list_of_secrets_is_masked_and_sealed(api: Api) -> None:
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={"version": VERSION, "input": {"text": "hi", "keys": ["k-one", "k-two"]}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["input"] == {"text": "hi", "keys": ["**********", "**********"]}
    row = api.platform.store.predictions.get(r.json()["id"])
    assert row is not None and "k-one" not in repr(row.input) + repr(row.run_input)
    assert api.platform.secrets is not None
    assert api.platform.secrets.open(row.run_input)["keys"] == ["k-one", "k-two"]


async def test_model_route_and_run_count(api: Api) -> None:
    r = await api.client.post(
        "/v1/models/alice/hello/predictions", headers=api.bob, json={"input": {"text": "x"}}
    )
    assert r.status_code == 201
    check_shape(r.json())
    model = (await api.client.get("/v1/models/alice/hello", headers=api.bob)).json()
    assert model["run_count"] == 1


async def test_wait_without_a_runner_answers_starting_in_time(api: Api) -> None:
    started = time.monotonic()
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Prefer": "wait=1"},
        json={"version": VERSION, "input": {"text": "x"}},
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 201 and r.json()["status"] == "starting"
    assert r.headers["preference-applied"] == "wait=1"
    assert 0.5 < elapsed < 1.0


async def test_forwarded_headers_make_urls(api: Api) -> None:
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "vendo.example"},
        json={"version": VERSION, "input": {"text": "x"}},
    )
    check_shape(r.json(), base="https://vendo.example")


async def test_cancel_after_sets_deadline(api: Api) -> None:
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Cancel-After": "1m30s"},
        json={"version": VERSION, "input": {"text": "x"}},
    )
    body = r.json()
    assert body["deadline"].endswith("Z")
    row = api.platform.store.predictions.get(body["id"])
    assert row is not None and row.deadline is not None
    assert 85 < (row.deadline - row.created_at).total_seconds() < 95


async def test_cancel(api: Api) -> None:
    created = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": {"text": "x"}}
    )
    url = created.json()["urls"]["cancel"]
    r = await api.client.post(url, headers=api.alice)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert r.json()["completed_at"] and r.json()["metrics"]["total_time"] >= 0
    again = await api.client.post(url, headers=api.alice)
    assert again.status_code == 200 and again.json() == r.json()
    assert (await api.client.post(url, headers=api.bob)).status_code == 404
    missing = await api.client.post("/v1/predictions/nope/cancel", headers=api.alice)
    assert missing.status_code == 404


async def test_list_paginates_newest_first(api: Api) -> None:
    ids = []
    for i in range(3):
        r = await api.client.post(
            "/v1/predictions",
            headers=api.alice,
            json={"version": VERSION, "input": {"text": str(i)}},
        )
        ids.append(r.json()["id"])
    await api.client.post(
        "/v1/predictions", headers=api.bob, json={"version": VERSION, "input": {"text": "b"}}
    )
    store = api.platform.store
    page = store.predictions.page(store.accounts.user_named("alice").id, limit=2)  # type: ignore[union-attr]
    assert page.next_cursor
    r = await api.client.get("/v1/predictions", headers=api.alice)
    body = r.json()
    assert [p["id"] for p in body["results"]] == ids[::-1]
    assert body["next"] is None and body["previous"] is None
    first = body["results"][-1]["created_at"]
    after = await api.client.get(
        "/v1/predictions", headers=api.alice, params={"created_after": first}
    )
    assert [p["id"] for p in after.json()["results"]] == ids[::-1][:2]
    # a cursor link is absolute and usable as is
    r = await api.client.get(
        f"/v1/predictions?cursor={page.next_cursor}&created_before=2999-01-01T00:00:00Z",
        headers=api.alice,
    )
    assert [p["id"] for p in r.json()["results"]] == ids[:1]
    assert r.json()["previous"].startswith("http://testserver/v1/predictions?")


class TestWithARunner:
    @pytest.fixture
    def scheduler_factory(self) -> Any:
        return EchoScheduler

    async def test_wait_returns_the_finished_prediction(self, api: Api) -> None:
        r = await api.client.post(
            "/v1/predictions",
            headers={**api.alice, "Prefer": "wait"},
            json={"version": VERSION, "input": {"text": "hello"}},
        )
        assert r.status_code == 201 and r.headers["preference-applied"] == "wait=60"
        body = r.json()
        assert body["status"] == "succeeded" and body["output"] == "hello"
        assert body["logs"] == "echoing\n" and body["started_at"] and body["completed_at"]
        assert body["metrics"]["predict_time"] == 0.01 and body["metrics"]["total_time"] >= 0

    async def test_held_prediction_is_reported_starting(self, api: Api) -> None:
        api.platform.scheduler.hold = True  # type: ignore[union-attr]
        r = await api.client.post(
            "/v1/predictions",
            headers={**api.alice, "Prefer": "wait=1"},
            json={"version": VERSION, "input": {"text": "x"}},
        )
        assert r.json()["status"] == "starting"

    async def test_an_async_create_answers_as_accepted(self, api: Api) -> None:
        # the model ends before the 201 is written (what a quick model often does): the
        # reply is still the prediction as accepted, as on Replicate
        scheduler = api.platform.scheduler
        assert isinstance(scheduler, EchoScheduler)
        scheduler.notify = lambda version_id: None  # type: ignore[method-assign]

        async def run_at_once(prediction: Any, wait: float, **kwargs: Any) -> None:
            await EchoScheduler.run_and_wait(scheduler, prediction, wait, **kwargs)
            await scheduler._run(pool_key(prediction.version_id))

        scheduler.run_and_wait = run_at_once  # type: ignore[method-assign]
        r = await api.client.post(
            "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": {"text": "q"}}
        )
        body = r.json()
        assert r.status_code == 201
        assert (body["status"], body["output"], body["completed_at"]) == ("starting", None, None)
        got = await api.client.get(f"/v1/predictions/{body['id']}", headers=api.alice)
        assert got.json()["status"] == "succeeded"  # it did end before the reply

    async def test_file_input_and_output(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
        data_uri = "data:image/png;base64," + base64.b64encode(png).decode()
        upload = await api.client.post(
            "/v1/files", headers=api.alice, files={"content": ("in.png", png, "image/png")}
        )
        for source in (data_uri, upload.json()["urls"]["get"]):
            r = await api.client.post(
                "/v1/predictions",
                headers={**api.alice, "Prefer": "wait"},
                json={"version": VERSION, "input": {"text": "x", "image": source}},
            )
            body = r.json()
            assert body["status"] == "succeeded", body
            assert body["input"]["image"] == source
            url = body["output"]
            assert url.startswith("http://testserver/v1/files/") and "signature=" in url
            for headers in ({}, api.alice):  # the Python client sends its token along
                got = await api.client.get(url, headers=headers)
                assert got.status_code == 200 and got.content == png
                assert got.headers["content-type"] == "image/png"
                assert got.headers["access-control-allow-origin"] == "*"
            tampered = url.replace("signature=", "signature=x")
            assert (await api.client.get(tampered)).status_code == 403
        # retention removes the data and the files
        api.platform.settings.retention = 0
        # the sweep's clock a second on: both finished "before" it, with no wait
        later = utcnow() + timedelta(seconds=1)
        monkeypatch.setattr(vendo.app, "utcnow", lambda: later)
        assert sweep_once(api.platform.settings, api.platform.store, api.platform.storage) >= 2
        again = (await api.client.get(body["urls"]["get"], headers=api.alice)).json()
        assert again["data_removed"] is True
        assert (again["input"], again["output"], again["logs"]) == ({}, None, "")
        assert (await api.client.get(url)).status_code == 404

    async def test_stream_replays_finished_prediction(self, api: Api) -> None:
        r = await api.client.post(
            "/v1/predictions",
            headers={**api.alice, "Prefer": "wait"},
            json={"version": VERSION, "input": {"text": " two\nlines"}, "stream": True},
        )
        body = r.json()
        stream = body["urls"]["stream"]
        assert "token=" in stream
        got = await api.client.get(stream)  # no Authorization: a capability URL
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/event-stream")
        text = got.text
        assert "event: output\ndata:  two\ndata: lines\n" in text
        assert text.rstrip().endswith("event: done\ndata: {}")
        assert all(block.startswith("id: ") for block in text.strip().split("\n\n") if block)
        bad = await api.client.get(stream.replace("token=", "token=x"))
        assert bad.status_code == 403


class TestConcurrency:
    @pytest.fixture
    def scheduler_factory(self) -> Any:
        return EchoScheduler

    async def test_concurrent_creates_all_finish(self, api: Api) -> None:
        import asyncio

        async def one(i: int) -> dict[str, Any]:
            r = await api.client.post(
                "/v1/predictions",
                headers={**api.alice, "Prefer": "wait=30"},
                json={"version": VERSION, "input": {"text": f"n{i}"}},
            )
            assert r.status_code == 201, r.text
            return r.json()

        results = await asyncio.gather(*(one(i) for i in range(40)))
        assert sorted(r["output"] for r in results) == sorted(f"n{i}" for i in range(40))
        assert {r["status"] for r in results} == {"succeeded"}
        listed = (await api.client.get("/v1/predictions", headers=api.alice)).json()["results"]
        assert len(listed) == 40
