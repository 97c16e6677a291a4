"""The served OpenAPI document describes what each /v1 route takes and answers, and the
answers the server really gives validate against it."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from api_v1_support import VERSION, Api

from vendo.api.v1 import routes as v1_routes
from vendo.api.v1.openapi import undescribed


async def _document(api: Api) -> dict[str, Any]:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _validator(doc: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    # the components as a 2020-12 schema of their own, so $refs between them resolve
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": doc["components"],
    }
    return jsonschema_rs.validator_for(schema)


def _body(operation: dict[str, Any], media_type: str) -> dict[str, Any]:
    body = operation["requestBody"]
    assert body["required"] is True
    schema: dict[str, Any] = body["content"][media_type]["schema"]
    return schema


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_every_route_is_described() -> None:
    assert undescribed(v1_routes()) == []


async def test_request_bodies_are_described(api: Api) -> None:
    doc = await _document(api)
    assert doc["openapi"] == "3.2.0"
    paths = doc["paths"]
    create = _resolve(doc, _body(paths["/v1/predictions"]["post"], "application/json"))
    parts = [_resolve(doc, s) for s in create["allOf"]]
    assert {"version", "input"} <= {name for p in parts for name in p.get("required", [])}
    request = parts[0]["properties"]
    assert set(request) >= {"input", "webhook", "webhook_events_filter", "stream"}
    assert request["webhook_events_filter"]["items"]["enum"] == [
        "start", "output", "logs", "completed",
    ]  # fmt: skip
    headers = {p["name"] for p in paths["/v1/predictions"]["post"]["parameters"]}
    assert headers == {"Prefer", "Cancel-After"}
    on_model = _resolve(
        doc, _body(paths["/v1/models/{owner}/{name}/predictions"]["post"], "application/json")
    )
    assert on_model["required"] == ["input"]
    model = _resolve(doc, _body(paths["/v1/models"]["post"], "application/json"))
    assert model["required"] == ["owner", "name", "visibility", "hardware"]
    assert model["properties"]["hardware"]["enum"] == ["cpu"]
    assert _body(paths["/v1/models"]["query"], "text/plain")["type"] == "string"
    patch = _resolve(doc, _body(paths["/v1/models/{owner}/{name}"]["patch"], "application/json"))
    assert patch["additionalProperties"] is False and "readme" in patch["properties"]
    upload = _resolve(doc, _body(paths["/v1/files"]["post"], "multipart/form-data"))
    assert upload["required"] == ["content"]
    assert upload["properties"]["content"]["format"] == "binary"
    push = paths["/v1/models/{owner}/{name}/versions"]["post"]["requestBody"]["content"]
    assert "application/gzip" in push
    # routes that take no body say so by having none
    assert "requestBody" not in paths["/v1/predictions/{id}/cancel"]["post"]
    for path, item in paths.items():
        for method, operation in item.items():
            assert "4XX" in operation["responses"], (method, path)
            if method in ("post", "patch", "query") and not path.endswith("/cancel"):
                assert "requestBody" in operation, (method, path)


async def test_every_component_schema_is_valid_json_schema(api: Api) -> None:
    doc = await _document(api)
    for name in doc["components"]["schemas"]:
        _validator(doc, name)  # raises on an invalid schema


async def test_real_answers_validate_against_the_document(api: Api) -> None:
    doc = await _document(api)
    c = api.client

    def check(name: str, body: Any) -> None:
        errors = [e.message for e in _validator(doc, name).iter_errors(body)]
        assert errors == [], (name, errors, body)

    r = await c.post(
        "/v1/predictions",
        headers={**api.alice, "Cancel-After": "5m"},
        json={"version": VERSION, "input": {"text": "hi", "api_key": "k"}, "stream": True},
    )
    assert r.status_code == 201, r.text
    check("Prediction", r.json())
    prediction_id = r.json()["id"]
    check("Prediction", (await c.get(f"/v1/predictions/{prediction_id}", headers=api.alice)).json())
    check("PredictionPage", (await c.get("/v1/predictions", headers=api.alice)).json())
    r = await c.post(f"/v1/predictions/{prediction_id}/cancel", headers=api.alice)
    check("Prediction", r.json())
    assert r.json()["status"] == "canceled" and r.json()["metrics"] is not None
    r = await c.post(
        "/v1/models",
        headers=api.alice,
        json={"owner": "alice", "name": "m2", "visibility": "private", "hardware": "cpu"},
    )
    assert r.status_code == 201
    check("Model", r.json())
    check("Model", (await c.get("/v1/models/alice/hello", headers=api.alice)).json())
    store = api.platform.store
    model = store.catalog.model("alice", "m2")
    assert model is not None
    build = store.catalog.create_build(model.id, "ef" * 32)
    store.catalog.finish_build(build.id, "failed", error="no cog.yaml")
    r = await c.get(f"/v1/models/alice/m2/builds/{build.id}", headers=api.alice)
    check("Build", r.json())
    r = await c.get("/v1/models/alice/m2", headers=api.alice)
    check("Model", r.json())
    assert r.json()["latest_build"]["status"] == "failed"
    check("ModelPage", (await c.get("/v1/models", headers=api.alice)).json())
    r = await c.request("QUERY", "/v1/models", headers=api.alice, content=b"hello")
    check("ModelPage", r.json())
    check("VersionPage", (await c.get("/v1/models/alice/hello/versions", headers=api.alice)).json())
    r = await c.get(f"/v1/models/alice/hello/versions/{VERSION}", headers=api.alice)
    check("Version", r.json())
    r = await c.post(
        "/v1/files",
        headers=api.alice,
        files={"content": ("a.txt", b"hello", "text/plain")},
        data={"metadata": '{"k": 1}'},
    )
    assert r.status_code == 201, r.text
    check("File", r.json())
    check("FilePage", (await c.get("/v1/files", headers=api.alice)).json())
    check("Account", (await c.get("/v1/account", headers=api.alice)).json())
    for item in (await c.get("/v1/hardware", headers=api.alice)).json():
        check("Hardware", item)
    check("CollectionPage", (await c.get("/v1/collections", headers=api.alice)).json())
    r = await c.get("/v1/search", params={"query": "hello"}, headers=api.alice)
    check("SearchResult", r.json())
    assert r.json()["models"]
    for status, r in (
        (401, await c.get("/v1/account")),
        (404, await c.get("/v1/predictions/nope", headers=api.alice)),
        (405, await c.put("/v1/predictions", headers=api.alice)),
        (422, await c.post("/v1/predictions", headers=api.alice, json={"version": VERSION})),
        (400, await c.post("/v1/predictions", headers=api.alice, content=b"{")),
    ):
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        check("Problem", r.json())
