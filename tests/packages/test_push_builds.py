"""Pushes against a real ``vendo serve`` (loopback HTTP, the CLI as a user types it):
one package, two models; a refused push records nothing and reveals no other owner's
private model; a model whose build failed, or is still building, says so everywhere."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from push_support import ADMIN_TOKEN, LiveServer, auth

from support import until
from vendo.packages import archive_bytes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello-world"
FIXTURES = ROOT / "tests" / "fixtures"
MAX_PACKAGE = 1_000_000
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("push-builds"),
        {"VENDO_MAX_PACKAGE_BYTES": str(MAX_PACKAGE)},
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> str:
    return server.add_user("alice")


@pytest.fixture(scope="module")
def bob(server: LiveServer) -> str:
    return server.add_user("bob")


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _model(server: LiveServer, ref: str, token: str = ADMIN_TOKEN) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models/{ref}", headers=auth(token))


def _predict(server: LiveServer, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=auth(token), timeout=60)


# --- #16.2: one package, two models ----------------------------------------------------


def test_one_package_pushed_to_two_models(server: LiveServer, alice: str) -> None:
    first = server.vendo("push", str(HELLO), "admin/hello-world", "-q")
    assert first.returncode == 0, first.stderr
    second = server.vendo("push", str(HELLO), "alice/hello-world", "-q", token=alice)
    assert second.returncode == 0, second.stderr
    admin_id, alice_id = _last_line(first.stdout), _last_line(second.stdout)
    assert HEX64.match(admin_id) and HEX64.match(alice_id)
    assert admin_id != alice_id  # a version id belongs to one model

    again = server.vendo("push", str(HELLO), "alice/hello-world", "-q", token=alice)
    assert again.returncode == 0, again.stderr
    assert _last_line(again.stdout) == alice_id  # idempotent: the existing version
    assert "unchanged" in again.stderr

    # the issue's own words: an example pushed again under a second name, by the admin
    you = server.vendo("push", str(HELLO), "you/hello-world", "-q")
    assert you.returncode == 0, you.stderr
    assert _last_line(you.stdout) not in (admin_id, alice_id)
    ran = server.vendo("run", "you/hello-world", "-i", "text=you")
    assert ran.returncode == 0 and ran.stdout.strip() == "hello you", ran.stderr

    ran = server.vendo("run", "alice/hello-world", "-i", "text=twice", token=alice)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "hello twice"
    ran = server.vendo("run", f"admin/hello-world:{admin_id}", "-i", "text=first")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "hello first"


# --- #9.5: a refused push records nothing; no reply reveals a private object -------------


def _tar(files: dict[str, bytes], unsafe: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if unsafe:
            tar.addfile(tarfile.TarInfo(unsafe), io.BytesIO(b""))
    return buf.getvalue()


PREDICT = (
    b"from cog import BasePredictor\n\n"
    b"class Predictor(BasePredictor):\n"
    b"    def predict(self) -> str:\n"
    b"        return 'ok'\n"
)
GOOD_COG = b'predict: "predict.py:Predictor"\n'

REFUSED = {
    "unsafe": (_tar({"cog.yaml": GOOD_COG}, unsafe="../escape"), 400),
    "no-cog-yaml": (_tar({"readme.txt": b"no model here"}), 422),
    "bad-yaml": (_tar({"cog.yaml": b"predict: [unclosed\n", "predict.py": PREDICT}), 400),
    "bad-field": (_tar({"cog.yaml": b"build: [1, 2]\npredict: x.py:P\n"}), 400),
    "no-predictor": (_tar({"cog.yaml": b"build:\n  gpu: false\n"}), 400),
    "train-only": (
        _tar({"cog.yaml": b'train: "predict.py:Predictor"\n', "predict.py": PREDICT}),
        422,
    ),
    "not-gzip": (b"this is not a tar archive", 400),
    "empty": (b"", 422),
    "too-large": (b"\0" * (MAX_PACKAGE + 1), 413),
}


def _packages(server: LiveServer) -> set[str]:
    folder = server.data_dir / "packages"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_push_records_nothing(server: LiveServer, alice: str, case: str) -> None:
    body, status = REFUSED[case]
    before = _packages(server)
    name = f"refused-{case}"
    r = httpx.post(
        f"{server.url}/v1/models/alice/{name}/versions", content=body, headers=auth(alice)
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _model(server, f"alice/{name}", alice).status_code == 404
    assert _model(server, f"alice/{name}").status_code == 404  # the admin sees all
    assert _packages(server) == before  # no unpacked folder, no upload left behind


def test_a_push_without_access_records_nothing(server: LiveServer, alice: str) -> None:
    package = archive_bytes(HELLO)
    r = httpx.post(
        f"{server.url}/v1/models/admin/not-yours/versions", content=package, headers=auth(alice)
    )
    assert r.status_code == 404, r.text
    assert _model(server, "admin/not-yours").status_code == 404
    # the admin may create an owner, but only with a push that is accepted
    bad = REFUSED["bad-field"][0]
    r = httpx.post(
        f"{server.url}/v1/models/neworg/x/versions", content=bad, headers=auth(ADMIN_TOKEN)
    )
    assert r.status_code == 400, r.text
    assert _model(server, "neworg/x").status_code == 404
    assert not server.user_exists("neworg")


def _detail(r: httpx.Response, name: str) -> str:
    return str(r.json()["detail"]).replace(name, "NAME")


def test_no_reply_reveals_another_owners_private_model(
    server: LiveServer, alice: str, bob: str, tmp_path: Path
) -> None:
    project = tmp_path / "secret"
    project.mkdir()
    (project / "cog.yaml").write_bytes(GOOD_COG)
    (project / "predict.py").write_bytes(PREDICT)
    pushed = server.vendo("push", str(project), "bob/secret", "--private", "-q", token=bob)
    assert pushed.returncode == 0, pushed.stderr
    secret_id = _last_line(pushed.stdout)

    # the same bytes pushed by alice: her own version, nothing about bob's
    copy = httpx.post(
        f"{server.url}/v1/models/alice/copy/versions",
        content=archive_bytes(project),
        headers=auth(alice),
        timeout=300,
    )
    assert copy.status_code == 201, copy.text
    assert copy.json()["id"] != secret_id
    assert secret_id not in copy.text and "bob" not in copy.text

    # bob's private model answers exactly like a model that does not exist
    package = archive_bytes(HELLO)
    pairs = [
        ("POST", "/v1/models/{}/versions", package),
        ("GET", "/v1/models/{}", None),
        ("GET", "/v1/models/{}/versions", None),
        ("GET", f"/v1/models/{{}}/versions/{secret_id}", None),
        ("GET", f"/v1/models/{{}}/versions/{secret_id}/build-log", None),
        ("POST", "/v1/models/{}/predictions", b'{"input": {}}'),
    ]
    for method, path, content in pairs:
        hidden = httpx.request(
            method, server.url + path.format("bob/secret"), content=content, headers=auth(alice)
        )
        missing = httpx.request(
            method, server.url + path.format("bob/nothing"), content=content, headers=auth(alice)
        )
        assert hidden.status_code == missing.status_code == 404, (path, hidden.text)
        assert _detail(hidden, "bob/secret") == _detail(missing, "bob/nothing"), path
        assert secret_id not in hidden.text or secret_id in path

    by_id = _predict(server, alice, "/v1/predictions", {"version": secret_id, "input": {}})
    unknown = _predict(server, alice, "/v1/predictions", {"version": "e" * 64, "input": {}})
    assert by_id.status_code == unknown.status_code == 404
    assert _detail(by_id, secret_id) == _detail(unknown, "e" * 64)
    listed = httpx.get(f"{server.url}/v1/models", headers=auth(alice)).json()["results"]
    assert all(m["owner"] != "bob" for m in listed)


# --- #16.3: a model whose build failed says so -------------------------------------------


def test_a_failed_build_is_shown_everywhere(
    server: LiveServer, alice: str, replicate_client: Any
) -> None:
    pushed = server.vendo("push", str(FIXTURES / "push_build_fails"), "alice/broken", token=alice)
    assert pushed.returncode == 1
    assert "Push failed" in pushed.stderr and "Traceback" not in pushed.stderr
    log_url = re.search(r"Build log: (\S+)", pushed.stderr)
    assert log_url is not None, pushed.stderr

    model = _model(server, "alice/broken", alice)
    assert model.status_code == 200  # the accepted push made the model, with its build
    body = model.json()
    assert body["latest_version"] is None
    build = body["latest_build"]
    assert build["status"] == "failed"
    assert "could not be loaded" in build["error"]
    assert build["urls"]["log"] == log_url.group(1)
    log = httpx.get(build["urls"]["log"], headers=auth(alice))
    assert log.status_code == 200 and "could not be loaded" in log.text
    assert httpx.get(build["urls"]["get"], headers=auth(alice)).json()["status"] == "failed"

    for path, payload in [
        ("/v1/models/alice/broken/predictions", {"input": {"text": "x"}}),
        ("/v1/predictions", {"version": "alice/broken", "input": {"text": "x"}}),
        ("/v1/predictions", {"version": build["version"], "input": {"text": "x"}}),
        ("/v1/predictions", {"version": f"alice/broken:{build['version']}", "input": {}}),
    ]:
        r = _predict(server, alice, path, payload)
        assert r.status_code == 409, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert "failed to build" in problem["detail"] and "could not be loaded" in problem["detail"]
        assert build["urls"]["log"] in problem["detail"]
        assert problem["build"]["status"] == "failed"

    # the version the push would have made is not there (404), and says why
    r = httpx.get(
        f"{server.url}/v1/models/alice/broken/versions/{build['version']}", headers=auth(alice)
    )
    assert r.status_code == 404 and "failed to build" in r.json()["detail"], r.text

    for ref in ("alice/broken", f"alice/broken:{build['version']}"):
        ran = server.vendo("run", ref, "-i", "text=x", token=alice)
        assert ran.returncode == 1
        assert "failed to build" in ran.stderr and build["urls"]["log"] in ran.stderr
        assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1

    # the official client reads the model (Replicate's fields intact) and gets the reason
    client = replicate_client(alice, server.url)
    assert client.models.get("alice/broken").latest_version is None
    with pytest.raises(replicate.exceptions.ReplicateError, match="failed to build"):
        client.run("alice/broken", input={"text": "x"})


def test_a_model_still_building_says_so(server: LiveServer, alice: str) -> None:
    push = server.vendo_background(
        "push", str(FIXTURES / "push_slow_build"), "alice/slow", "-q", token=alice
    )
    try:

        def building() -> bool:
            assert push.poll() is None, push.communicate()
            r = _model(server, "alice/slow", alice)
            # the model exists a moment before its push's build does
            build = r.json().get("latest_build") if r.status_code == 200 else None
            return build is not None and build["status"] == "building"

        until(building, timeout=120, what="alice/slow to be building")
        r = _predict(server, alice, "/v1/models/alice/slow/predictions", {"input": {}})
        assert r.status_code == 409, r.text
        assert "still building" in r.json()["detail"]
        assert r.json()["build"]["status"] == "building"
        ran = server.vendo("run", "alice/slow", token=alice)
        assert ran.returncode == 1 and "still building" in ran.stderr, ran.stderr
        out, err = push.communicate(timeout=300)
    finally:
        if push.poll() is None:
            push.kill()
        push.communicate(timeout=10)  # reaps it and closes its pipes
    assert push.returncode == 0, err
    version_id = _last_line(out)
    body = _model(server, "alice/slow", alice).json()
    assert body["latest_build"]["status"] == "succeeded"
    assert body["latest_build"]["version"] == body["latest_version"]["id"] == version_id
    ran = server.vendo("run", "alice/slow", "-i", "text=at last", token=alice)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "built at last"


def test_a_build_cut_short_by_a_crash_is_reported_failed(tmp_path: Path) -> None:
    live = LiveServer(tmp_path)
    live.start()
    push: subprocess.Popen[str] | None = None
    try:
        push = live.vendo_background("push", str(FIXTURES / "push_slow_build"), "admin/cut")

        def building() -> bool:
            r = _model(live, "admin/cut")
            # the model exists a moment before its push's build does
            build = r.json().get("latest_build") if r.status_code == 200 else None
            return build is not None and build["status"] == "building"

        until(building, timeout=120, what="admin/cut to be building")
        live.stop(kill=True)  # kill -9 in the middle of the build
        push.communicate(timeout=60)
        live.start()
        build = _model(live, "admin/cut").json()["latest_build"]
        assert build["status"] == "failed" and "interrupted" in build["error"]
        r = _predict(live, ADMIN_TOKEN, "/v1/models/admin/cut/predictions", {"input": {}})
        assert r.status_code == 409 and "interrupted" in r.json()["detail"]
    finally:
        if push is not None:
            if push.poll() is None:
                push.kill()
            push.communicate(timeout=10)  # reaps it and closes its pipes
        live.stop()
