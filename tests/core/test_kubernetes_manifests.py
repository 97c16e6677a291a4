"""The Kubernetes manifests in deploy/kubernetes (#15 item 4): each document is valid
against Kubernetes' own schemas (``kubernetes-validate``, strict: no unknown field), and
they say what scaled mode needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vendo.cli import COMMANDS
from vendo.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = _documents()


def _named(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_there_are_manifests_for_every_part() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in DOCUMENTS}
    assert {
        ("Deployment", "vendo-api"),
        ("Service", "vendo-api"),
        ("Deployment", "vendo-agent-gpu"),
        ("Job", "vendo-migrate"),
        ("Secret", "vendo"),
        ("ConfigMap", "vendo"),
    } <= kinds


@pytest.mark.parametrize("name, doc", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_each_manifest_is_valid_kubernetes(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    doc = _named("Deployment", "vendo-api")
    typo = {**doc, "spec": {**doc["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, kubernetes_validate.latest_version(), strict=True)
    wrong = {**doc, "spec": {**doc["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, kubernetes_validate.latest_version(), strict=True)


def test_every_vendo_variable_is_a_setting() -> None:
    """A misspelt VENDO_ name would be ignored by the server without a word."""
    names = set()
    for _, doc in DOCUMENTS:
        if doc["kind"] in ("ConfigMap", "Secret"):
            names |= set(doc.get("data") or {}) | set(doc.get("stringData") or {})
        elif "template" in doc.get("spec", {}):
            names |= {e["name"] for e in _container(doc).get("env", [])}
    known = {f"VENDO_{field.upper()}" for field in Settings.model_fields}
    vendo = {n for n in names if n.startswith("VENDO_")}
    assert vendo and vendo <= known, vendo - known
    assert {"VENDO_DATABASE_URL", "VENDO_STORAGE_URL"} <= vendo


def test_the_api_servers_run_no_models_and_the_service_reaches_them() -> None:
    api = _named("Deployment", "vendo-api")
    assert _container(api)["command"] == ["vendo", "serve", "--no-runners"]
    assert api["spec"]["replicas"] >= 2  # an API that survives a host
    service = _named("Service", "vendo-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_gpu_agents_ask_for_gpu_nodes() -> None:
    agent = _named("Deployment", "vendo-agent-gpu")
    spec = agent["spec"]["template"]["spec"]
    assert any(key.startswith("nvidia.com/") for key in spec["nodeSelector"])
    container = _container(agent)
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    command = container["command"]
    assert command[:2] == ["vendo", "agent"]
    assert "--database-url" in command and "--storage-url" in command
    assert command[command.index("--hardware") + 1].startswith("gpu-")


def test_the_migration_job_runs_a_vendo_command() -> None:
    job = _named("Job", "vendo-migrate")
    command = _container(job)["command"]
    assert command[0] == "vendo" and command[1] in COMMANDS
