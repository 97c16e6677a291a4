"""What each ``/v1`` operation takes and answers, for the served OpenAPI document.

The records' schemas are in :mod:`vendo.api.v1.openapi_schemas`. ``OPERATIONS`` is
keyed by ``(METHOD, path)`` exactly as the routes are declared; a route missing here
fails the document's test, so a new route comes with its description.
"""

from __future__ import annotations

from typing import Any

from vendo.api.v1.openapi_schemas import Schema, ref

__all__ = ["OPERATIONS", "PROBLEM"]


PROBLEM = "application/problem+json"


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: Schema | None, status: str = "200") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _json(schema)
    return {status: response}


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"200": {"description": description, "content": {media_type: {"schema": {}}}}}


def _body(schema: Schema, media_type: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media_type: {"schema": schema}}}


def _link(operation_id: str, **parameters: str) -> Schema:
    """An OpenAPI link: where the answer's values (runtime expressions) lead next."""
    return {"operationId": operation_id, "parameters": parameters}


def _created(
    description: str, schema: Schema, links: dict[str, Schema], *, location: bool = False
) -> dict[str, Any]:
    """A ``201`` answering ``schema``, with the ``links`` that lead on from it and, with
    ``location``, the ``Location`` header (its ``urls.get``)."""
    response: dict[str, Any] = {"description": description}
    if location:
        response["headers"] = {
            "Location": {"schema": {"type": "string"}, "description": "its urls.get"}
        }
    response["content"] = _json(schema)
    response["links"] = links
    return {"201": response}


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


# empty: no filter
TIME_FILTER: Schema = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
_CURSOR = _query("cursor", {"type": "string"}, "opaque; from a page's next/previous URL")
_PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "`wait` or `wait=N` (1-60 s): answer once done or N s have passed",
}
_CANCEL_AFTER = {
    "name": "Cancel-After",
    "in": "header",
    "required": False,
    "schema": {
        "type": "string",
        # case-insensitive, as parse_cancel_after reads it
        "pattern": r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?[hH])?(\d+(\.\d+)?[mM])?(\d+(\.\d+)?[sS])?)\s*$",
    },
    "description": "a deadline from creation: 30s, 5m, 1h30m45s or seconds (minimum 5 s)",
}
_CREATED = {
    "201": {
        "description": "the prediction: terminal if it ended within a Prefer wait, else starting",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "its urls.get"},
            "Preference-Applied": {"schema": {"type": "string"}},
        },
        "content": _json(ref("Prediction")),
        "links": {
            "get": _link("get_prediction_get", id="$response.body#/id"),
            "cancel": _link("cancel_prediction_post", id="$response.body#/id"),
        },
    }
}
_MODEL = {"owner": "$response.body#/owner", "name": "$response.body#/name"}

Operation = dict[str, Any]

OPERATIONS: dict[tuple[str, str], Operation] = {
    # predictions
    ("POST", "/v1/predictions"): {
        "parameters": [_PREFER, _CANCEL_AFTER],
        "requestBody": _body(ref("PredictionCreate")),
        "responses": _CREATED,
    },
    ("GET", "/v1/predictions"): {
        "parameters": [
            _query("created_after", TIME_FILTER, "ISO 8601; only predictions created after"),
            _query("created_before", TIME_FILTER, "ISO 8601; only predictions created before"),
            _CURSOR,
        ],
        "responses": _ok("a page of your predictions, newest first", ref("PredictionPage")),
    },
    ("GET", "/v1/predictions/{id}"): {"responses": _ok("the prediction", ref("Prediction"))},
    ("POST", "/v1/predictions/{id}/cancel"): {
        "responses": _ok("the prediction (unchanged if it had ended)", ref("Prediction")),
    },
    ("GET", "/v1/predictions/{id}/stream"): {
        "parameters": [_query("token", {"type": "string"}, "from urls.stream", required=True)],
        "responses": _text("server-sent events: output, logs, error, done", "text/event-stream"),
        "security": [],
    },
    ("POST", "/v1/models/{owner}/{name}/predictions"): {
        "parameters": [_PREFER, _CANCEL_AFTER],
        "requestBody": _body(ref("PredictionRequest")),
        "responses": _CREATED,
    },
    # trainings
    ("POST", "/v1/models/{owner}/{name}/versions/{id}/trainings"): {
        "description": "Train the version (its cog.yaml has `train:`); on success the "
        "weights become a new version of `destination`.",
        "parameters": [_CANCEL_AFTER],
        "requestBody": _body(ref("TrainingRequest")),
        "responses": _created(
            "the training, starting",
            ref("Training"),
            {
                "get": _link("get_training_get", id="$response.body#/id"),
                "cancel": _link("cancel_training_post", id="$response.body#/id"),
            },
            location=True,
        ),
    },
    ("GET", "/v1/trainings"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of your trainings, newest first", ref("TrainingPage")),
    },
    ("GET", "/v1/trainings/{id}"): {"responses": _ok("the training", ref("Training"))},
    ("POST", "/v1/trainings/{id}/cancel"): {
        "responses": _ok("the training (unchanged if it had ended)", ref("Training")),
    },
    # models
    ("GET", "/v1/models"): {
        "parameters": [
            _query(
                "sort_by",
                {"type": "string", "enum": ["model_created_at", "latest_version_created_at"]},
                "default model_created_at",
            ),
            _query("sort_direction", {"type": "string", "enum": ["asc", "desc"]}, "default desc"),
            _CURSOR,
        ],
        "responses": _ok("a page of the models you may see", ref("ModelPage")),
    },
    ("POST", "/v1/models"): {
        "requestBody": _body(ref("ModelCreate")),
        "responses": _created(
            "the new model",
            ref("Model"),
            {
                "get": _link("get_model_get", **_MODEL),
                "update": _link("patch_model_patch", **_MODEL),
                "delete": _link("delete_model_delete", **_MODEL),
                "versions": _link("list_versions_get", **_MODEL),
            },
        ),
    },
    ("QUERY", "/v1/models"): {
        "requestBody": _body(
            {
                "type": "string",
                "pattern": r"\S",
                "description": "the search text; a JSON string (quoted) is unwrapped",
            },
            "text/plain",
        ),
        "responses": _ok("a page of matching models", ref("ModelPage")),
    },
    ("GET", "/v1/models/{owner}/{name}"): {"responses": _ok("the model", ref("Model"))},
    ("PATCH", "/v1/models/{owner}/{name}"): {
        "requestBody": _body(ref("ModelUpdate")),
        "responses": _ok("the updated model", ref("Model")),
    },
    ("DELETE", "/v1/models/{owner}/{name}"): {
        "responses": {"204": {"description": "deleted"}},
    },
    ("GET", "/v1/models/{owner}/{name}/readme"): {
        "responses": _text("the README", "text/markdown"),
    },
    ("GET", "/v1/models/{owner}/{name}/examples"): {
        "responses": _ok("a page of example predictions", ref("PredictionPage")),
    },
    ("GET", "/v1/models/{owner}/{name}/versions"): {
        "responses": _ok("a page of versions, newest first", ref("VersionPage")),
    },
    ("GET", "/v1/models/{owner}/{name}/versions/{id}"): {
        "responses": _ok("the version", ref("Version")),
    },
    ("DELETE", "/v1/models/{owner}/{name}/versions/{id}"): {
        "responses": {"204": {"description": "deleted"}},
    },
    ("POST", "/v1/models/{owner}/{name}/versions"): {
        "description": "The body is the project (cog.yaml, predict.py, ...) as a tar or "
        "gzipped tar, as `vendo push` sends it. The version id is the content hash of the "
        "files. With `Accept: application/x-ndjson` the build streams as JSON lines.",
        "parameters": [
            _query(
                "visibility",
                {"type": "string", "enum": ["public", "private"]},
                "of the model when this push creates it; default public",
            )
        ],
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/gzip", "application/x-tar", "application/octet-stream")
            },
        },
        "responses": {
            "201": {"description": "the new version", "content": _json(ref("Version"))},
            "200": {
                "description": "the version, which existed already; or the build as "
                "JSON lines (step, log, then version or error)",
                "content": {
                    **_json(ref("Version")),
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
        },
    },
    ("GET", "/v1/models/{owner}/{name}/builds/{id}"): {
        "responses": _ok("the build", ref("Build")),
    },
    ("GET", "/v1/models/{owner}/{name}/builds/{id}/log"): {
        "responses": _text("the build's log"),
    },
    ("GET", "/v1/models/{owner}/{name}/versions/{id}/build-log"): {
        "responses": _text("the build log"),
    },
    # files
    ("POST", "/v1/files"): {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": ref("FileUpload"),
                    "encoding": {"metadata": {"contentType": "text/plain, application/json"}},
                }
            },
        },
        "responses": _created(
            "the stored file",
            ref("File"),
            {
                "get": _link("get_file_get", id="$response.body#/id"),
                "delete": _link("delete_file_delete", id="$response.body#/id"),
            },
        ),
    },
    ("GET", "/v1/files"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of your files, newest first", ref("FilePage")),
    },
    ("GET", "/v1/files/{id}"): {"responses": _ok("the file's metadata", ref("File"))},
    ("DELETE", "/v1/files/{id}"): {"responses": {"204": {"description": "deleted"}}},
    ("GET", "/v1/files/{id}/download"): {
        "parameters": [
            _query(name, {"type": "string"}, "from a signed URL", required=True)
            for name in ("owner", "expiry", "signature")
        ],
        "responses": {
            "200": {
                "description": "the bytes, with the file's content type",
                "content": {"*/*": {"schema": {}}},
            }
        },
        "security": [],
    },
    # account and catalogue
    ("GET", "/v1/account"): {"responses": _ok("the account", ref("Account"))},
    ("GET", "/v1/hardware"): {
        "responses": _ok("a bare array", {"type": "array", "items": ref("Hardware")}),
    },
    ("GET", "/v1/webhooks/default/secret"): {
        "responses": _ok(
            "the signing secret",
            {
                "type": "object",
                "required": ["key"],
                "properties": {"key": {"type": "string", "pattern": "^whsec_"}},
            },
        ),
    },
    # usage and credit (Vendo's own)
    ("GET", "/v1/usage"): {
        "description": "Billed seconds (setting up, idle, active) and their cost per group, "
        "for the caller's account or, for an admin, any `account` (docs/usage.md).",
        "parameters": [
            _query("start", TIME_FILTER, "ISO 8601 date or date-time; default end - 30 days"),
            _query("end", TIME_FILTER, "ISO 8601 date or date-time, excluded; default now"),
            _query(
                "group_by",
                {"type": "string", "enum": ["day", "model", "hardware", "deployment"]},
                "default day",
            ),
            _query("account", {"type": "string"}, "username; only an admin may name another"),
        ],
        "responses": _ok("usage per group, and its total", ref("Usage")),
    },
    ("GET", "/v1/accounts/{username}/credit"): {
        "responses": _ok("the account's credit (null: unlimited)", ref("Credit")),
    },
    ("PUT", "/v1/accounts/{username}/credit"): {
        "description": "Admin only. `amount` becomes the account's credit from now on; null "
        "makes it unlimited.",
        "requestBody": _body(
            {
                "type": "object",
                "required": ["amount"],
                "properties": {
                    "amount": {"type": ["number", "null"], "minimum": 0, "maximum": 1e12}
                },
            }
        ),
        "responses": _ok("the account's new credit", ref("Credit")),
    },
    ("GET", "/v1/collections"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of collections", ref("CollectionPage")),
    },
    ("GET", "/v1/collections/{slug}"): {
        "responses": _ok("the collection", ref("Collection")),
    },
    ("GET", "/v1/search"): {
        "parameters": [
            _query("query", {"type": "string", "pattern": r"\S"}, "search text", required=True),
            _query(
                "limit",
                {"type": "integer", "minimum": 0},
                "results (1-50, default 20; larger values count as 50)",
            ),
        ],
        "responses": _ok("matching models", ref("SearchResult")),
    },
    # deployments
    ("POST", "/v1/deployments"): {
        "requestBody": _body(ref("DeploymentCreate")),
        "responses": _created(
            "the new deployment, at release 1",
            ref("Deployment"),
            {
                "get": _link("get_deployment_get", **_MODEL),
                "update": _link("update_deployment_patch", **_MODEL),
            },
        ),
    },
    ("GET", "/v1/deployments"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of your deployments", ref("DeploymentPage")),
    },
    ("GET", "/v1/deployments/{owner}/{name}"): {
        "responses": _ok("the deployment and its current release", ref("Deployment")),
    },
    ("PATCH", "/v1/deployments/{owner}/{name}"): {
        "description": "Every change creates the next release. min_instances = "
        "max_instances = 0 disables the deployment: its queued and running predictions are "
        "canceled and new ones refused (409).",
        "requestBody": _body(ref("DeploymentUpdate")),
        "responses": _ok("the deployment at its new release", ref("Deployment")),
    },
    ("DELETE", "/v1/deployments/{owner}/{name}"): {
        "description": "Only a disabled deployment (min = max = 0) without instances or "
        "predictions left is deleted; otherwise 409.",
        "responses": {"204": {"description": "deleted"}},
    },
    ("POST", "/v1/deployments/{owner}/{name}/predictions"): {
        "description": "A prediction on the deployment's current release, in its own queue; "
        "409 while the deployment is disabled.",
        "parameters": [_PREFER, _CANCEL_AFTER],
        "requestBody": _body(ref("PredictionRequest")),
        "responses": _CREATED,
    },
    # Vendo's own: tokens (each user's own) and accounts (the admin's)
    ("GET", "/v1/tokens"): {
        "description": "Vendo's own. Through a token scoped to an organization, only the "
        "tokens scoped to it.",
        "responses": _ok("your tokens (never the tokens themselves)", ref("TokenPage")),
    },
    ("POST", "/v1/tokens"): {
        "description": "Vendo's own. `organization`: one of yours, which the token acts as.",
        "requestBody": _body(ref("TokenCreate")),
        "responses": _ok("the new token, shown this once", ref("TokenCreated"), "201"),
    },
    ("DELETE", "/v1/tokens/{id}"): {
        "description": "Vendo's own. The token stops working from the next request on.",
        "responses": {"204": {"description": "revoked"}},
    },
    ("GET", "/v1/users"): {
        "description": "Vendo's own; the admin only (403 otherwise).",
        "responses": _ok("the users", ref("UserPage")),
    },
    ("POST", "/v1/users"): {
        "description": "Vendo's own; the admin only (403 otherwise).",
        "requestBody": _body(ref("UserCreate")),
        "responses": _ok("the new user, with their first token", ref("UserCreated"), "201"),
    },
    ("GET", "/v1/organizations"): {
        "description": "Vendo's own; the admin only (403 otherwise).",
        "responses": _ok("the organizations and their members", ref("OrganizationPage")),
    },
    ("POST", "/v1/organizations"): {
        "description": "Vendo's own; the admin only (403 otherwise).",
        "requestBody": _body(ref("OrganizationCreate")),
        "responses": _ok("the new organization", ref("Organization"), "201"),
    },
    ("POST", "/v1/organizations/{name}/members"): {
        "description": "Vendo's own; the admin only (403 otherwise). A member already: "
        "their role changes.",
        "requestBody": _body(ref("MemberAdd")),
        "responses": _ok("the organization", ref("Organization")),
    },
    ("GET", "/openapi.json"): {
        "responses": _ok("this document", {"type": "object"}),
        "security": [],
    },
}
