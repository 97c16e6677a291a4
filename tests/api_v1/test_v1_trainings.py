"""Trainings against a live ``vendo serve`` (issue 13): the official ``replicate``
client (1.0.7) trains the text-classifier example into a destination model, and the
new version predicts with the trained weights; cancel, the destination and trainer
checks, and a kill -9 during a training.

Environments are really built (two models without dependencies), hence ``slow``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, publish_models, wait_status

from serve_support import clean_env, vendo
from support import until
from vendo.store import Store, database_url

replicate = pytest.importorskip("replicate")

pytestmark = pytest.mark.slow

TOKEN = "train-admin-token"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text-classifier"
MODELS = {"text-classifier": str(EXAMPLE), "trainer": "api_trainer", "echo": "api_echo"}
TERMINAL = {"succeeded", "failed", "canceled"}
INTERRUPTED = "interrupted: the server stopped while this prediction was running"


@dataclass
class Server:
    data_dir: Path
    live: LiveServer
    versions: dict[str, str]
    client: replicate.Client
    http: httpx.Client


def _destination(http: httpx.Client, name: str, visibility: str = "private") -> None:
    response = http.post(
        "/v1/models",
        json={"owner": "admin", "name": name, "visibility": visibility, "hardware": "cpu"},
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("trainings")
    versions = publish_models(work / "data", work / "packages", MODELS, TOKEN)
    live = LiveServer(work / "data", work / "server.log", TOKEN)
    live.start()
    transport = httpx.HTTPTransport()
    client = replicate.Client(api_token=TOKEN, base_url=live.url, transport=transport)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
            yield Server(work / "data", live, versions, client, http)
    finally:
        transport.close()
        live.stop()


def _finished(client: Any, training_id: str) -> Any:
    found: list[Any] = []

    def done() -> bool:
        found[:] = [client.trainings.get(training_id)]
        return bool(found[0].status in TERMINAL)

    until(done, timeout=120, what=f"training {training_id} to end")
    return found[0]


def test_the_client_trains_the_example_and_runs_the_new_version(server: Server) -> None:
    client, version = server.client, server.versions["text-classifier"]
    _destination(server.http, "my-classifier")
    trainer = f"admin/text-classifier:{version}"
    cake, goal = "whisk the eggs and bake the cake", "the striker scored a goal"
    # untrained, it knows sentiment only
    assert client.run(trainer, input={"text": cake}) in ("positive", "negative")

    with (EXAMPLE / "topics.csv").open("rb") as examples:
        created = client.trainings.create(
            version=trainer, input={"examples": examples}, destination="admin/my-classifier"
        )
    assert created.status == "starting" and created.destination == "admin/my-classifier"
    assert created.version == version
    training = _finished(client, created.id)
    assert training.status == "succeeded", (training.error, training.logs)
    assert "training on 12 examples" in training.logs
    raw = server.http.get(f"/v1/trainings/{created.id}").json()
    assert raw["metrics"]["predict_time"] > 0 and raw["urls"]["get"].endswith(created.id)
    new_version = training.output["version"]
    assert new_version.startswith("admin/my-classifier:")
    weights = server.http.get(training.output["weights"])
    assert weights.status_code == 200 and set(weights.json()["docs"]) == {"cooking", "sports"}

    assert created.id in [t.id for t in client.trainings.list().results]
    # the new version predicts with the trained weights: the training data's labels
    assert client.run(new_version, input={"text": cake}) == "cooking"
    assert client.run(new_version, input={"text": goal}) == "sports"
    model = client.models.get("admin/my-classifier")
    assert model.latest_version is not None and model.latest_version.id == new_version[-64:]
    # the trainer itself is unchanged
    assert client.run(trainer, input={"text": cake}) in ("positive", "negative")


def test_create_by_model_and_cancel(server: Server) -> None:
    client, version = server.client, server.versions["trainer"]
    _destination(server.http, "canceled-dest")
    created = client.trainings.create(
        model="admin/trainer",
        version=version,
        input={"text": "slow", "sleep": 120},
        destination="admin/canceled-dest",
    )
    wait_status(server.http, f"/v1/trainings/{created.id}", {"processing"})
    client.trainings.cancel(created.id)
    training = _finished(client, created.id)
    assert training.status == "canceled" and training.output is None
    versions = server.http.get("/v1/models/admin/canceled-dest/versions").json()
    assert versions["results"] == []


def test_trained_version_gets_its_weights_in_setup(server: Server) -> None:
    client, version = server.client, server.versions["trainer"]
    _destination(server.http, "weights-dest")
    created = client.trainings.create(
        version=f"admin/trainer:{version}",
        input={"text": "tuned"},
        destination="admin/weights-dest",
    )
    training = _finished(client, created.id)
    assert training.status == "succeeded", training.error
    assert client.run(training.output["version"], input={"text": "x"}) == "tuned: x"
    assert client.run(f"admin/trainer:{version}", input={"text": "x"}) == "untrained: x"


def test_destination_and_trainer_are_checked_at_create(server: Server) -> None:
    http, versions = server.http, server.versions
    url = f"/v1/models/admin/trainer/versions/{versions['trainer']}/trainings"
    missing = http.post(url, json={"destination": "admin/nope", "input": {}})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    bad = http.post(url, json={"destination": "no-slash", "input": {}})
    assert bad.status_code == 422 and "destination" in bad.json()["detail"]
    _destination(http, "echo-dest")
    echo = f"/v1/models/admin/echo/versions/{versions['echo']}/trainings"
    untrainable = http.post(echo, json={"destination": "admin/echo-dest", "input": {}})
    assert untrainable.status_code == 422 and "train:" in untrainable.json()["detail"]
    # another user may not push to admin's models: a public one is 403, a private one
    # (which they cannot see) 404
    _destination(http, "public-dest", visibility="public")
    store = Store.open(database_url(server.data_dir, None))
    try:
        other = store.accounts.create_user("someone")
        token = store.accounts.create_token(other.id)
    finally:
        store.close()
    auth = {"Authorization": f"Bearer {token}"}
    public = http.post(url, json={"destination": "admin/public-dest"}, headers=auth)
    assert public.status_code == 403, public.text
    private = http.post(url, json={"destination": "admin/echo-dest"}, headers=auth)
    assert private.status_code == 404, private.text


def test_kill_9_during_a_training(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"trainer": "api_trainer"}, TOKEN)
    live = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    live.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
            _destination(http, "dest")
            created = http.post(
                f"/v1/models/admin/trainer/versions/{versions['trainer']}/trainings",
                json={"destination": "admin/dest", "input": {"text": "x", "sleep": 120}},
            ).json()
            wait_status(http, f"/v1/trainings/{created['id']}", {"processing"})
        orphans = live.children()
        live.stop(signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        live.start()
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
            training = http.get(f"/v1/trainings/{created['id']}").json()
            assert training["status"] == "failed" and training["error"] == INTERRUPTED
            assert training["output"] is None
            versions_after = http.get("/v1/models/admin/dest/versions").json()
            assert versions_after["results"] == []
    finally:
        live.stop()


def test_vendo_train_shows_logs_and_prints_the_new_version(server: Server, tmp_path: Path) -> None:
    _destination(server.http, "cli-dest")
    env = clean_env(VENDO_API_TOKEN=TOKEN, VENDO_URL=server.live.url)
    ref = f"admin/trainer:{server.versions['trainer']}"
    done = vendo("train", ref, "-d", "admin/cli-dest", "-i", "text=cli", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "training with cli" in done.stderr
    new_version = done.stdout.strip()
    assert new_version.startswith("admin/cli-dest:")
    assert server.client.run(new_version, input={"text": "y"}) == "cli: y"
    # a destination that is not OWNER/NAME is refused before anything is made (a missing
    # one is created: tests/cli/test_first_hour.py)
    bad = vendo("train", ref, "-d", "nowhere", "-i", "text=cli", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "Error: --destination is a model, OWNER/NAME: got 'nowhere'"
    )
