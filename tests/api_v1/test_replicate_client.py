"""The official ``replicate`` Python client (1.0.7) against a live ``vendo serve``.

One server (a real child process on a free port, over HTTPS with a throwaway
certificate so that file outputs become ``FileOutput``s) serves three real models whose
environments are built here: an echo model, an iterator model and a file-in/file-out
model. Slow-ish (environment builds), hence the ``slow`` marker.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

replicate = pytest.importorskip("replicate")

from api_v1_support import LiveServer, publish_models, wait_status  # noqa: E402
from replicate.helpers import FileOutput  # noqa: E402

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures"
TOKEN = "e2e-admin-token"
MODELS = {"echo": "api_echo", "stream": "api_stream", "files": "api_file_io"}


@dataclass
class Server:
    url: str
    versions: dict[str, str]  # model name -> version id
    client: replicate.Client


def _certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("e2e")
    data_dir = work / "data"
    versions = publish_models(data_dir, work / "packages", MODELS, TOKEN)
    cert, key = _certificate(work)
    live = LiveServer(data_dir, work / "server.log", TOKEN, cert=cert, key=key)
    live.start()
    url = live.url
    try:
        # The client's httpx reads SSL_CERT_FILE to trust our certificate.
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(cert)
        # a transport of ours: the client never closes its connections itself
        transport = httpx.HTTPTransport()
        client = replicate.Client(api_token=TOKEN, base_url=url, transport=transport)
        try:
            yield Server(url, versions, client)
        finally:
            transport.close()
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous
    finally:
        live.stop()


def test_run_by_model_and_by_version(server: Server) -> None:
    assert server.client.run("admin/echo", input={"text": "by model"}) == "by model"
    version = server.versions["echo"]
    assert server.client.run(f"admin/echo:{version}", input={"text": "by id"}) == "by id"


def test_iterator_output(server: Server) -> None:
    output = server.client.run(f"admin/stream:{server.versions['stream']}", input={"count": 3})
    assert list(output) == ["item 0", "item 1", "item 2"]


def test_predictions_create_get_list_cancel(server: Server) -> None:
    c = server.client
    prediction = c.predictions.create(version=server.versions["echo"], input={"text": "x"})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.output == "x"
    assert "echoing x" in prediction.logs
    got = c.predictions.get(prediction.id)
    assert got.id == prediction.id and got.metrics["predict_time"] >= 0
    listed = c.predictions.list()
    assert prediction.id in [p.id for p in listed.results]

    slow = c.predictions.create(version=server.versions["echo"], input={"text": "y", "sleep": 60})
    slow.cancel()
    slow.wait()
    assert slow.status == "canceled"


def test_models_and_versions(server: Server) -> None:
    model = server.client.models.get("admin/echo")
    assert model.owner == "admin" and model.name == "echo"
    assert model.latest_version is not None
    assert model.latest_version.id == server.versions["echo"]
    versions = model.versions.list()
    assert [v.id for v in versions] == [server.versions["echo"]]
    version = model.versions.get(server.versions["echo"])
    assert "Input" in version.openapi_schema["components"]["schemas"]


def test_local_file_in_file_output_out(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "doc.txt"
    source.write_bytes(b"vendo file round trip")
    with source.open("rb") as f:
        output = server.client.run(f"admin/files:{server.versions['files']}", input={"document": f})
    assert isinstance(output, FileOutput)
    assert output.read() == b"vendo file round trip"[::-1]
    assert output.url.startswith(f"{server.url}/v1/files/")


def _api(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


def test_wait_while_running_answers_starting_then_processing(server: Server) -> None:
    with _api(server) as api:
        started = time.monotonic()
        r = api.post(
            "/v1/predictions",
            headers={"Prefer": "wait=1"},
            json={"version": server.versions["echo"], "input": {"text": "w", "sleep": 4}},
        )
        assert time.monotonic() - started < 1.0
        assert r.status_code == 201 and r.headers["preference-applied"] == "wait=1"
        assert r.json()["status"] == "starting"
        url = r.headers["location"]
        body = wait_status(api, url, {"processing", "succeeded", "failed", "canceled"}, timeout=10)
        assert body["status"] == "processing" and body["started_at"]
        assert "echoing w" in body["logs"]
        api.post(body["urls"]["cancel"])


def test_cancel_after_ends_a_queued_prediction_unrun(server: Server) -> None:
    with _api(server) as api:
        busy = api.post(
            "/v1/predictions",
            json={"version": server.versions["echo"], "input": {"text": "busy", "sleep": 30}},
        ).json()
        r = api.post(
            "/v1/predictions",
            headers={"Cancel-After": "5s"},
            json={"version": server.versions["echo"], "input": {"text": "late"}},
        )
        assert r.json()["deadline"]
        url = r.json()["urls"]["get"]
        body = wait_status(api, url, {"succeeded", "failed", "canceled"}, timeout=20)
        assert body["status"] == "canceled" and body["started_at"] is None
        assert body["logs"] == ""
        api.post(busy["urls"]["cancel"])


def test_account_hardware_secret_search_files(server: Server, tmp_path: Path) -> None:
    c = server.client
    assert c.accounts.current().username == "admin"
    assert "cpu" in [h.sku for h in c.hardware.list()]
    assert c.webhooks.default.secret().key.startswith("whsec_")
    assert "stream" in [m.name for m in c.models.search("stream").results]
    assert list(c.collections.list()) == []
    path = tmp_path / "upload.json"
    path.write_text('{"a": 1}')
    uploaded = c.files.create(path, metadata={"purpose": "test"})
    assert uploaded.name == "upload.json" and uploaded.size == 8
    assert c.files.get(uploaded.id).checksums["sha256"] == uploaded.checksums["sha256"]
    assert uploaded.id in [f.id for f in c.files.list()]
    c.files.delete(uploaded.id)


def test_model_create_and_delete(server: Server) -> None:
    c = server.client
    created = c.models.create(owner="admin", name="scratch", visibility="private", hardware="cpu")
    assert created.visibility == "private"
    c.models.delete("admin/scratch")
    with pytest.raises(replicate.exceptions.ReplicateError):
        c.models.get("admin/scratch")


def test_javascript_client(server: Server, node_client: str) -> None:
    node = node_client
    js_dir = Path(__file__).parents[1] / "js"
    env = {
        **os.environ,
        "VENDO_JS_DIR": str(js_dir),
        "VENDO_TOKEN": TOKEN,
        "VENDO_BASE": server.url,
        "VENDO_VERSIONS": json.dumps(server.versions),
        "NODE_EXTRA_CA_CERTS": os.environ["SSL_CERT_FILE"],
    }
    script = Path(__file__).parent / "js" / "v1_client.mjs"
    done = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["byModel"] == "js model" and results["byVersion"] == "js version"
    assert results["fileIsFileOutput"] and results["fileText"] == "bytes from js"[::-1]
    assert results["stream"] == ["item 0", "item 1", "item 2"]
    assert results["listed"] >= 4
    assert "echo" in results["search"]


def test_python_client_stream(server: Server) -> None:
    events = list(
        server.client.stream(f"admin/stream:{server.versions['stream']}", input={"count": 3})
    )
    outputs = [e.data for e in events if e.event.value == "output"]
    assert outputs == ["item 0", "item 1", "item 2"]
    assert events[-1].event.value == "done"
    assert "".join(str(e) for e in events) == "item 0item 1item 2"
