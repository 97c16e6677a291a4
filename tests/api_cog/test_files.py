"""Input files, output files, --upload-url, large payloads and trainings (§10 6, 10, 28, 29)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from support import start_http_server, stop_http_server, until_async

SEVEN_MIB = 7 * 1024 * 1024
OK = "data:text/plain,ok"


class Origin:
    """Serves GET /<name> downloads and takes PUT uploads, on loopback."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, str, bytes]] = []
        self.fail_uploads = False
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = b"q" * SEVEN_MIB if self.path.startswith("/big") else b"pixels"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers["content-length"]))
                origin.uploads.append((self.path, self.headers["content-type"], data))
                if origin.fail_uploads:
                    self.send_response(500)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(201)
                self.send_header("location", f"{origin.url}/stored{self.path}?token=abc")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = start_http_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    stop_http_server(o.server)


async def test_url_inputs_arrive_as_local_files(serve: Any, origin: Origin) -> None:
    served = await serve("srv_files")
    data_uri = "data:text/plain;base64," + base64.b64encode(b"hello").decode()
    r = await served.client.post(
        "/predictions",
        json={
            "input": {
                "image": f"{origin.url}/cat.png",
                "maybe": data_uri,
                "many": [f"{origin.url}/a.jpg", f"{origin.url}/b.jpg"],
                "handle": data_uri,
                "url": f"{origin.url}/stays-a-string.txt",
            }
        },
    )
    body = r.json()
    assert body["status"] == "succeeded", body
    output = body["output"]
    assert output["name"] == "cat.png" and output["size"] == 6
    assert output["maybe"] == "file.txt"
    assert output["many"] == ["a.jpg", "b.jpg"]
    assert output["handle"] == 5
    assert output["url"] == f"{origin.url}/stays-a-string.txt"  # str input stays a string


async def test_bad_input_url_fails_the_prediction(serve: Any) -> None:
    served = await serve("srv_files")
    r = await served.client.post(
        "/predictions",
        json={"input": {"image": "http://169.254.169.254/latest", "many": [], "handle": OK}},
    )
    body = r.json()
    assert body.get("status") == "failed" and "link-local" in body["error"], body


async def test_seven_mib_input_and_large_output(serve: Any, origin: Origin) -> None:
    served = await serve("srv_files")
    big = base64.b64encode(b"p" * SEVEN_MIB).decode()
    r = await served.client.post(
        "/predictions",
        json={
            "input": {
                "image": "data:application/octet-stream;base64," + big,
                "out_bytes": 5 * 1024 * 1024,
                "many": [],
                "handle": OK,
            }
        },
    )
    body = r.json()
    assert body["status"] == "succeeded", body["error"]
    assert body["output"]["size"] == SEVEN_MIB
    url = body["output"]["file"]
    assert url.startswith("data:application/octet-stream;base64,")
    assert len(base64.b64decode(url.split(",", 1)[1])) == 5 * 1024 * 1024
    r = await served.client.post(
        "/predictions", json={"input": {"image": f"{origin.url}/big", "many": [], "handle": OK}}
    )
    assert r.json()["output"]["size"] == SEVEN_MIB
    # and a 7 MiB string input round-trips through the child
    served_echo = await serve("srv_echo")
    text = "t" * SEVEN_MIB
    r = await served_echo.client.post("/predictions", json={"input": {"text": text}})
    assert r.json()["output"] == text


async def test_upload_url_keeps_yield_order(serve: Any, origin: Origin) -> None:
    served = await serve("srv_iter_files", upload_url=f"{origin.url}/up/")
    r = await served.client.post("/predictions", json={"input": {"n": 3}})
    body = r.json()
    assert body["status"] == "succeeded", body["error"]
    assert body["output"] == [f"{origin.url}/stored/up/out-{i}.txt" for i in range(3)]
    assert [(p, t) for p, t, _ in origin.uploads] == [
        (f"/up/out-{i}.txt", "text/plain") for i in range(3)
    ]
    assert origin.uploads[0][2] == b"file 0"


async def test_failed_upload_fails_the_prediction(serve: Any, origin: Origin) -> None:
    origin.fail_uploads = True
    served = await serve("srv_iter_files", upload_url=f"{origin.url}/up")
    r = await served.client.post("/predictions", json={"input": {"n": 2}})
    body = r.json()
    assert body["status"] == "failed"
    assert "HTTP 500" in body["error"]


async def test_trainings(serve: Any) -> None:
    served = await serve("srv_train")
    root = (await served.client.get("/")).json()
    assert root["trainings_url"] == "/trainings"
    assert root["trainings_idempotent_url"] == "/trainings/{training_id}"
    assert root["trainings_cancel_url"] == "/trainings/{training_id}/cancel"
    await until_async(
        lambda: served.server.services["trainings"].runner.state.value == "READY",
        timeout=15,
        what="the training runner to be READY",
    )
    r = await served.client.post("/trainings", json={"input": {"steps": 3}})
    body = r.json()
    assert body["status"] == "succeeded", body
    assert base64.b64decode(body["output"]["weights"].split(",", 1)[1]) == b"www"
    assert "training for 3 steps" in body["logs"]
    r = await served.client.put("/trainings/t1", json={"input": {"steps": 0}})
    assert r.status_code == 422
    r = await served.client.post(
        "/trainings", json={"input": {}}, headers={"Accept": "text/event-stream"}
    )
    assert r.status_code == 406
    openapi = (await served.client.get("/openapi.json")).json()
    assert "/trainings" in openapi["paths"] and "/predictions" in openapi["paths"]
    r = await served.client.post("/predictions", json={"input": {"text": "y"}})
    assert r.json()["output"] == "predicted y"
