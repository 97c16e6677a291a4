"""``vendo push`` and ``vendo run`` against a real ``vendo serve`` (subprocesses, a free
port, a tmp data dir): upload, safe extraction, build, content-hash ids, predictions,
file inputs and outputs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support import free_port, http_ready, start_server, stop_process
from vendo.api.v1.push import version_id_for
from vendo.packages import archive_bytes, content_hash, safe_extract

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOKEN = "push-test-token"


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]

    def vendo(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vendo", *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("push")
    data_dir = work / "data"
    port = free_port()
    env = {
        **os.environ,
        "VENDO_API_TOKEN": TOKEN,
        "VENDO_DATA_DIR": str(data_dir),
        "VENDO_URL": f"http://127.0.0.1:{port}",
        "VENDO_ALLOW_NEAREST_PYTHON": "true",
    }
    env.pop("REPLICATE_API_TOKEN", None)
    url = f"http://127.0.0.1:{port}"
    process = start_server(
        [sys.executable, "-m", "vendo", "serve", "--host", "127.0.0.1", "--port", str(port)],
        ready=http_ready(f"{url}/v1/hardware", _auth()),
        log_path=work / "server.log",
        env=env,
        cwd=work,
    )
    try:
        yield Server(url, data_dir, env)
    finally:
        stop_process(process)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expected_id(project: Path, tmp: Path) -> str:
    safe_extract(io.BytesIO(archive_bytes(project)), tmp)
    return content_hash(tmp)


def test_push_prints_the_content_hash_and_run_predicts(server: Server, tmp_path: Path) -> None:
    pushed = server.vendo("push", str(EXAMPLES / "hello-world"), "admin/hello-world")
    assert pushed.returncode == 0, pushed.stderr
    version_id = pushed.stdout.strip().splitlines()[-1]
    digest = _expected_id(EXAMPLES / "hello-world", tmp_path / "x")
    assert version_id == version_id_for("admin", "hello-world", digest)
    assert "==> " in pushed.stderr  # build progress was shown

    again = server.vendo("push", str(EXAMPLES / "hello-world"), "admin/hello-world")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == version_id  # same content, same id

    ran = server.vendo("run", "admin/hello-world", "-i", "text=Vendo")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "hello Vendo"
    pinned = server.vendo("run", f"admin/hello-world:{version_id}", "-i", "text=pinned")
    assert pinned.stdout.strip() == "hello pinned"

    log = httpx.get(
        f"{server.url}/v1/models/admin/hello-world/versions/{version_id}/build-log",
        headers=_auth(),
    )
    assert log.status_code == 200 and "cog.yaml" in log.text


def test_run_downloads_file_outputs(server: Server, tmp_path: Path) -> None:
    pushed = server.vendo("push", str(EXAMPLES / "image"), "admin/image", "-q")
    assert pushed.returncode == 0, pushed.stderr
    out = tmp_path / "out"
    ran = server.vendo("run", "admin/image", "-i", "width=16", "-i", "height=12", "-o", str(out))
    assert ran.returncode == 0, ran.stderr
    [png] = list(out.iterdir())
    assert ran.stdout.strip() == str(png)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(data[16:20], "big") == 16  # IHDR width


def test_run_uploads_file_inputs(server: Server, tmp_path: Path) -> None:
    project = tmp_path / "reader"
    project.mkdir()
    (project / "cog.yaml").write_text('predict: "predict.py:Predictor"\n')
    (project / "predict.py").write_text(
        "from cog import BasePredictor, Path\n\n"
        "class Predictor(BasePredictor):\n"
        "    def predict(self, doc: Path) -> str:\n"
        "        return doc.read_text().upper()\n"
    )
    assert server.vendo("push", str(project), "admin/reader").returncode == 0
    note = tmp_path / "note.txt"
    note.write_text("uploaded through /v1/files")
    ran = server.vendo("run", "admin/reader", "-i", f"doc=@{note}")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "UPLOADED THROUGH /V1/FILES"


def test_failed_build_is_reported(server: Server, tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "cog.yaml").write_text('predict: "predict.py:Missing"\n')
    (project / "predict.py").write_text("x = 1\n")
    pushed = server.vendo("push", str(project), "admin/broken")
    assert pushed.returncode == 1
    assert "Push failed" in pushed.stderr


def _tar(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        cog = tarfile.TarInfo("cog.yaml")
        cog.size = 5
        tar.addfile(cog, io.BytesIO(b"x: 1\n"))
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        _tar("../escape"),
        _tar("/abs"),
        _tar("link", tarfile.SYMTYPE, "/etc/passwd"),
        _tar("dev", tarfile.CHRTYPE),
    ],
)
def test_unsafe_packages_are_refused(server: Server, archive: bytes) -> None:
    r = httpx.post(
        f"{server.url}/v1/models/admin/unsafe/versions", content=archive, headers=_auth()
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert not any(p.name == "escape" for p in server.data_dir.rglob("escape"))


def test_push_needs_write_access(server: Server) -> None:
    created = httpx.post(
        f"{server.url}/v1/models",
        json={"owner": "admin", "name": "mine", "visibility": "public", "hardware": "cpu"},
        headers=_auth(),
    )
    assert created.status_code == 201
    r = httpx.post(
        f"{server.url}/v1/models/admin/mine/versions",
        content=archive_bytes(EXAMPLES / "hello-world"),
        headers=_auth("not-a-token"),
    )
    assert r.status_code == 401


def test_run_prints_a_token_stream(server: Server) -> None:
    pushed = server.vendo("push", str(EXAMPLES / "stream-text"), "admin/stream-text", "-q")
    assert pushed.returncode == 0, pushed.stderr
    ran = server.vendo("run", "admin/stream-text", "-i", "text=one two three", "-i", "delay=0.1")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "one two three\n"


def test_run_exits_1_when_the_prediction_fails(server: Server, tmp_path: Path) -> None:
    project = tmp_path / "fails"
    project.mkdir()
    (project / "cog.yaml").write_text('predict: "predict.py:Predictor"\n')
    (project / "predict.py").write_text(
        "from cog import BasePredictor\n\n"
        "class Predictor(BasePredictor):\n"
        "    def predict(self) -> str:\n"
        "        print('about to fail')\n"
        "        raise ValueError('bad luck')\n"
    )
    assert server.vendo("push", str(project), "admin/fails").returncode == 0
    ran = server.vendo("run", "admin/fails")
    assert ran.returncode == 1
    assert "bad luck" in ran.stderr
    assert "about to fail" in ran.stderr  # the model's logs went to stderr
