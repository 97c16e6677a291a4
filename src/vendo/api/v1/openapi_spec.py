"""What each ``/v1`` operation takes and answers, for the served OpenAPI document.

Field names follow Replicate's reference (spec/replicate-api.md §3, §4, §7); each schema
says what the handler really accepts and what :mod:`vendo.api.v1.render` really
writes. ``OPERATIONS`` is keyed by ``(METHOD, path)`` exactly as the routes are
declared; a route missing here fails the document's test, so a new route comes with
its description.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPERATIONS", "PROBLEM", "components"]

Schema = dict[str, Any]

PROBLEM = "application/problem+json"
_NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,199}$"
_URL_FIELDS = ("github_url", "paper_url", "license_url", "weights_url", "cover_image_url")
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME: Schema = {"type": "string", "format": "date-time"}
_TEXT_OR_NULL: Schema = {"type": ["string", "null"]}


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["next", "previous", "results"],
        "properties": {
            "next": {"type": ["string", "null"], "description": "absolute URL of the next page"},
            "previous": {"type": ["string", "null"]},
            "results": {"type": "array", "items": _ref(item)},
        },
    }


def components(hardware_skus: list[str]) -> dict[str, Schema]:
    """The document's ``components.schemas``; ``hardware_skus`` is what this server
    offers (models are created with one of them)."""
    prediction_urls = {
        "type": "object",
        "required": ["get", "cancel", "web"],
        "properties": {
            "get": {"type": "string"},
            "cancel": {"type": "string"},
            "web": {"type": "string"},
            "stream": {
                "type": "string",
                "description": "signed SSE URL; present for streamable predictions only",
            },
        },
        "additionalProperties": {"type": "string"},
    }
    model_fields: dict[str, Schema] = {
        "description": _TEXT_OR_NULL,
        "readme": _TEXT_OR_NULL,
        **{
            name: {"type": ["string", "null"], "pattern": "^(https?://.*)?$"}
            for name in _URL_FIELDS
        },
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details: the one error shape",
            "required": ["title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "invalid_fields": {
                    "type": "array",
                    "description": "one entry per invalid field (422 only)",
                    "items": {
                        "type": "object",
                        "required": ["field", "type", "description"],
                        "properties": {
                            "field": {"type": "string"},
                            "type": {"type": "string"},
                            "description": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Prediction": {
            "type": "object",
            "required": [
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
            ],  # fmt: skip
            "properties": {
                "id": {"type": "string"},
                "model": {"type": "string", "description": "owner/name"},
                "version": {"type": "string"},
                "input": {"type": "object", "description": "secret inputs shown masked"},
                "output": {"description": "the model's output; files as URLs"},
                "logs": {"type": "string"},
                "error": _TEXT_OR_NULL,
                "status": {
                    "type": "string",
                    "enum": ["starting", "processing", "succeeded", "failed", "canceled"],
                },
                "created_at": _TIME,
                "started_at": _nullable(_TIME),
                "completed_at": _nullable(_TIME),
                "urls": prediction_urls,
                "metrics": {
                    "type": ["object", "null"],
                    "description": "predict_time, total_time, ...; null until terminal",
                },
                "data_removed": {"type": "boolean"},
                "source": {"type": "string", "enum": ["api", "web"]},
                "deployment": _TEXT_OR_NULL,
                "deadline": {**_TIME, "description": "only with Cancel-After"},
            },
        },
        "PredictionRequest": {
            "type": "object",
            "required": ["input"],
            "description": "unknown keys are ignored",
            "properties": {
                "input": {
                    "type": "object",
                    "description": "validated against the version's Input schema (422)",
                },
                "webhook": {
                    "type": "string",
                    "format": "uri",
                    "pattern": "^https?://",
                    "description": "http(s) URL notified of the prediction's events",
                },
                "webhook_events_filter": {
                    "type": "array",
                    "items": {"type": "string", "enum": WEBHOOK_EVENTS},
                },
                "webhook_completed": {
                    "type": "string",
                    "format": "uri",
                    "pattern": "^https?://",
                    "description": "legacy: a webhook for the completed event only",
                },
                "stream": {"type": "boolean", "description": "deprecated; accepted"},
            },
        },
        "PredictionCreate": {
            "allOf": [
                _ref("PredictionRequest"),
                {
                    "type": "object",
                    "required": ["version"],
                    "properties": {
                        "version": {
                            "type": "string",
                            "minLength": 1,
                            "description": "64-hex version id, owner/name:id or owner/name",
                        }
                    },
                },
            ]
        },
        "Version": {
            "type": "object",
            "required": ["id", "created_at", "cog_version", "openapi_schema"],
            "properties": {
                "id": {"type": "string"},
                "created_at": _TIME,
                "cog_version": {"type": "string"},
                "openapi_schema": {"type": "object", "description": "the model's Cog schema"},
            },
        },
        "Model": {
            "type": "object",
            "required": [
                "url",
                "owner",
                "name",
                "description",
                "visibility",
                *_URL_FIELDS,
                "run_count",
                "is_official",
                "hardware",
                "default_example",
                "latest_version",
            ],  # fmt: skip
            "properties": {
                "url": {"type": "string"},
                "owner": {"type": "string"},
                "name": {"type": "string"},
                "description": _TEXT_OR_NULL,
                "visibility": {"type": "string", "enum": ["public", "private"]},
                **{name: _TEXT_OR_NULL for name in _URL_FIELDS},
                "run_count": {"type": "integer", "minimum": 0},
                "is_official": {"type": "boolean"},
                "hardware": _TEXT_OR_NULL,
                "default_example": _nullable(_ref("Prediction")),
                "latest_version": _nullable(_ref("Version")),
                "latest_build": {
                    "anyOf": [_ref("Build"), {"type": "null"}],
                    "description": "Vendo: the latest accepted push",
                },
            },
        },
        "Build": {
            "type": "object",
            "description": "Vendo: one accepted push of a model",
            "required": ["id", "status", "version", "error", "created_at", "completed_at", "urls"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["building", "failed", "succeeded"]},
                "version": {"type": "string", "description": "the id it has or will have"},
                "error": _TEXT_OR_NULL,
                "created_at": _TIME,
                "completed_at": _nullable(_TIME),
                "urls": {
                    "type": "object",
                    "required": ["get", "log"],
                    "properties": {"get": {"type": "string"}, "log": {"type": "string"}},
                },
            },
        },
        "ModelCreate": {
            "type": "object",
            "required": ["owner", "name", "visibility", "hardware"],
            "properties": {
                "owner": {"type": "string", "minLength": 1},
                "name": {"type": "string", "pattern": _NAME_PATTERN},
                "visibility": {"type": "string", "enum": ["public", "private"]},
                "hardware": {"type": "string", "enum": hardware_skus},
                **model_fields,
            },
        },
        "ModelUpdate": {
            "type": "object",
            "properties": model_fields,
            "additionalProperties": False,
        },
        "File": {
            "type": "object",
            "required": [
                "id",
                "name",
                "content_type",
                "size",
                "etag",
                "checksums",
                "metadata",
                "created_at",
                "expires_at",
                "urls",
            ],  # fmt: skip
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "content_type": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "etag": {"type": "string", "description": "MD5, hex"},
                "checksums": {
                    "type": "object",
                    "required": ["sha256", "md5"],
                    "properties": {"sha256": {"type": "string"}, "md5": {"type": "string"}},
                },
                "metadata": {"type": "object"},
                "created_at": _TIME,
                "expires_at": _nullable(_TIME),
                "urls": {
                    "type": "object",
                    "required": ["get"],
                    "properties": {"get": {"type": "string"}},
                },
            },
        },
        "FileUpload": {
            "type": "object",
            "required": ["content"],
            "properties": {
                "content": {"type": "string", "format": "binary"},
                "filename": {"type": "string", "description": "defaults to the part's"},
                "type": {"type": "string", "description": "content type; else guessed"},
                "metadata": {
                    "type": "string",
                    "description": "a JSON object, as text or as an application/json part",
                },
            },
        },
        "Account": {
            "type": "object",
            "required": ["type", "username", "name", "github_url", "avatar_url"],
            "properties": {
                "type": {"type": "string", "enum": ["user", "organization"]},
                "username": {"type": "string"},
                "name": {"type": "string"},
                "github_url": _TEXT_OR_NULL,
                "avatar_url": _TEXT_OR_NULL,
            },
        },
        "Hardware": {
            "type": "object",
            "required": ["sku", "name"],
            "properties": {"sku": {"type": "string"}, "name": {"type": "string"}},
        },
        "Collection": {
            "type": "object",
            "required": ["name", "slug", "description"],
            "properties": {
                "name": {"type": "string"},
                "slug": {"type": "string"},
                "description": _TEXT_OR_NULL,
                "full_description": _TEXT_OR_NULL,
                "models": {"type": "array", "items": _ref("Model")},
            },
        },
        "SearchResult": {
            "type": "object",
            "required": ["query", "models", "collections", "pages"],
            "properties": {
                "query": {"type": "string"},
                "models": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["model", "metadata"],
                        "properties": {
                            "model": _ref("Model"),
                            "metadata": {"type": "object"},
                        },
                    },
                },
                "collections": {"type": "array", "items": _ref("Collection")},
                "pages": {"type": "array"},
            },
        },
        "PredictionPage": _page("Prediction"),
        "ModelPage": _page("Model"),
        "VersionPage": _page("Version"),
        "FilePage": _page("File"),
        "CollectionPage": _page("Collection"),
    }


# --- operations -------------------------------------------------------------------------


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


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


# empty: no filter
_TIME_FILTER: Schema = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
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
        "content": _json(_ref("Prediction")),
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
        "requestBody": _body(_ref("PredictionCreate")),
        "responses": _CREATED,
    },
    ("GET", "/v1/predictions"): {
        "parameters": [
            _query("created_after", _TIME_FILTER, "ISO 8601; only predictions created after"),
            _query("created_before", _TIME_FILTER, "ISO 8601; only predictions created before"),
            _CURSOR,
        ],
        "responses": _ok("a page of your predictions, newest first", _ref("PredictionPage")),
    },
    ("GET", "/v1/predictions/{id}"): {"responses": _ok("the prediction", _ref("Prediction"))},
    ("POST", "/v1/predictions/{id}/cancel"): {
        "responses": _ok("the prediction (unchanged if it had ended)", _ref("Prediction")),
    },
    ("GET", "/v1/predictions/{id}/stream"): {
        "parameters": [_query("token", {"type": "string"}, "from urls.stream", required=True)],
        "responses": _text("server-sent events: output, logs, error, done", "text/event-stream"),
        "security": [],
    },
    ("POST", "/v1/models/{owner}/{name}/predictions"): {
        "parameters": [_PREFER, _CANCEL_AFTER],
        "requestBody": _body(_ref("PredictionRequest")),
        "responses": _CREATED,
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
        "responses": _ok("a page of the models you may see", _ref("ModelPage")),
    },
    ("POST", "/v1/models"): {
        "requestBody": _body(_ref("ModelCreate")),
        "responses": {
            "201": {
                "description": "the new model",
                "content": _json(_ref("Model")),
                "links": {
                    "get": _link("get_model_get", **_MODEL),
                    "update": _link("patch_model_patch", **_MODEL),
                    "delete": _link("delete_model_delete", **_MODEL),
                    "versions": _link("list_versions_get", **_MODEL),
                },
            }
        },
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
        "responses": _ok("a page of matching models", _ref("ModelPage")),
    },
    ("GET", "/v1/models/{owner}/{name}"): {"responses": _ok("the model", _ref("Model"))},
    ("PATCH", "/v1/models/{owner}/{name}"): {
        "requestBody": _body(_ref("ModelUpdate")),
        "responses": _ok("the updated model", _ref("Model")),
    },
    ("DELETE", "/v1/models/{owner}/{name}"): {
        "responses": {"204": {"description": "deleted"}},
    },
    ("GET", "/v1/models/{owner}/{name}/readme"): {
        "responses": _text("the README", "text/markdown"),
    },
    ("GET", "/v1/models/{owner}/{name}/examples"): {
        "responses": _ok("a page of example predictions", _ref("PredictionPage")),
    },
    ("GET", "/v1/models/{owner}/{name}/versions"): {
        "responses": _ok("a page of versions, newest first", _ref("VersionPage")),
    },
    ("GET", "/v1/models/{owner}/{name}/versions/{id}"): {
        "responses": _ok("the version", _ref("Version")),
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
            "201": {"description": "the new version", "content": _json(_ref("Version"))},
            "200": {
                "description": "the version, which existed already; or the build as "
                "JSON lines (step, log, then version or error)",
                "content": {
                    **_json(_ref("Version")),
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
        },
    },
    ("GET", "/v1/models/{owner}/{name}/builds/{id}"): {
        "responses": _ok("the build", _ref("Build")),
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
                    "schema": _ref("FileUpload"),
                    "encoding": {"metadata": {"contentType": "text/plain, application/json"}},
                }
            },
        },
        "responses": {
            "201": {
                "description": "the stored file",
                "content": _json(_ref("File")),
                "links": {
                    "get": _link("get_file_get", id="$response.body#/id"),
                    "delete": _link("delete_file_delete", id="$response.body#/id"),
                },
            }
        },
    },
    ("GET", "/v1/files"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of your files, newest first", _ref("FilePage")),
    },
    ("GET", "/v1/files/{id}"): {"responses": _ok("the file's metadata", _ref("File"))},
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
    ("GET", "/v1/account"): {"responses": _ok("the account", _ref("Account"))},
    ("GET", "/v1/hardware"): {
        "responses": _ok("a bare array", {"type": "array", "items": _ref("Hardware")}),
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
    ("GET", "/v1/collections"): {
        "parameters": [_CURSOR],
        "responses": _ok("a page of collections", _ref("CollectionPage")),
    },
    ("GET", "/v1/collections/{slug}"): {
        "responses": _ok("the collection", _ref("Collection")),
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
        "responses": _ok("matching models", _ref("SearchResult")),
    },
    ("GET", "/openapi.json"): {
        "responses": _ok("this document", {"type": "object"}),
        "security": [],
    },
}
