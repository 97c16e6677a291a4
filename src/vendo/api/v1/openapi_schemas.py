"""The ``components.schemas`` of the served OpenAPI document: one function per record
that ``/v1`` answers or accepts.

Field names follow Replicate's reference (spec/replicate-api.md §3, §4, §7); each schema
says what the handler really accepts and what :mod:`vendo.api.v1.render` really writes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NAME_PATTERN", "TIME", "WEBHOOK_EVENTS", "Schema", "components", "page_of", "ref"]

Schema = dict[str, Any]

NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,199}$"
_URL_FIELDS = ("github_url", "paper_url", "license_url", "weights_url", "cover_image_url")
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


TIME: Schema = {"type": "string", "format": "date-time"}
_TEXT_OR_NULL: Schema = {"type": ["string", "null"]}


def page_of(item: str) -> Schema:
    """A page of ``item``: ``{next, previous, results}``."""
    return {
        "type": "object",
        "required": ["next", "previous", "results"],
        "properties": {
            "next": {"type": ["string", "null"], "description": "absolute URL of the next page"},
            "previous": {"type": ["string", "null"]},
            "results": {"type": "array", "items": ref(item)},
        },
    }


def _prediction_urls() -> Schema:
    """Where a prediction can be read, canceled, seen and streamed."""
    return {
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


def _model_fields() -> dict[str, Schema]:
    """The descriptive fields that creating and updating a model both accept."""
    return {
        "description": _TEXT_OR_NULL,
        "readme": _TEXT_OR_NULL,
        **{
            name: {"type": ["string", "null"], "pattern": "^(https?://.*)?$"}
            for name in _URL_FIELDS
        },
    }


def _problem() -> Schema:
    """RFC 9457 problem details: the one error shape of every operation."""
    return {
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
    }


def _prediction() -> Schema:
    """A prediction as every route answers it."""
    return {
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
            "created_at": TIME,
            "started_at": _nullable(TIME),
            "completed_at": _nullable(TIME),
            "urls": _prediction_urls(),
            "metrics": {
                "type": ["object", "null"],
                "description": "predict_time, total_time, ...; null until terminal",
            },
            "data_removed": {"type": "boolean"},
            "source": {"type": "string", "enum": ["api", "web"]},
            "deployment": _TEXT_OR_NULL,
            "deadline": {**TIME, "description": "only with Cancel-After"},
        },
    }


def _prediction_request() -> Schema:
    """The body that runs a model (by name or deployment; the version is in the path)."""
    return {
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
    }


def _prediction_create() -> Schema:
    """``POST /v1/predictions``: a request that names its version."""
    return {
        "allOf": [
            ref("PredictionRequest"),
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
    }


def _training() -> Schema:
    """A training: a prediction of the trainer version with its ``destination``; on
    success ``output`` is ``{version: "owner/name:id", weights: URL}``."""
    return {
        "allOf": [
            ref("Prediction"),
            {
                "type": "object",
                "required": ["destination"],
                "properties": {"destination": {"type": "string", "description": "owner/name"}},
            },
        ]
    }


def _training_request() -> Schema:
    """``POST .../versions/{id}/trainings``: the trainer's input and the destination."""
    return {
        "allOf": [
            ref("PredictionRequest"),
            {
                "type": "object",
                "required": ["destination"],
                "properties": {
                    "input": {
                        "type": "object",
                        "description": "validated against the version's TrainingInput (422)",
                    },
                    "destination": {
                        "type": "string",
                        "pattern": "^[^/]+/[^/]+$",
                        "description": "owner/name of a model you may push to: the "
                        "trained version is added to it",
                    },
                },
            },
        ]
    }


def _version() -> Schema:
    """One pushed version of a model, with the model's Cog schema."""
    return {
        "type": "object",
        "required": ["id", "created_at", "cog_version", "openapi_schema"],
        "properties": {
            "id": {"type": "string"},
            "created_at": TIME,
            "cog_version": {"type": "string"},
            "openapi_schema": {"type": "object", "description": "the model's Cog schema"},
        },
    }


def _model() -> Schema:
    """A model as answered; ``latest_build`` is Vendo's own (and not required)."""
    schema: Schema = {
        "type": "object",
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
            "default_example": _nullable(ref("Prediction")),
            "latest_version": _nullable(ref("Version")),
            "latest_build": {
                "anyOf": [ref("Build"), {"type": "null"}],
                "description": "Vendo: the latest accepted push",
            },
        },
    }
    schema["required"] = [name for name in schema["properties"] if name != "latest_build"]
    return schema


def _build() -> Schema:
    """Vendo: one accepted push of a model."""
    return {
        "type": "object",
        "description": "Vendo: one accepted push of a model",
        "required": ["id", "status", "version", "error", "created_at", "completed_at", "urls"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["building", "failed", "succeeded"]},
            "version": {"type": "string", "description": "the id it has or will have"},
            "error": _TEXT_OR_NULL,
            "created_at": TIME,
            "completed_at": _nullable(TIME),
            "urls": {
                "type": "object",
                "required": ["get", "log"],
                "properties": {"get": {"type": "string"}, "log": {"type": "string"}},
            },
        },
    }


def _model_create(hardware_skus: list[str]) -> Schema:
    """``POST /v1/models``."""
    return {
        "type": "object",
        "required": ["owner", "name", "visibility", "hardware"],
        "properties": {
            "owner": {"type": "string", "minLength": 1},
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "visibility": {"type": "string", "enum": ["public", "private"]},
            "hardware": {"type": "string", "enum": hardware_skus},
            **_model_fields(),
        },
    }


def _model_update() -> Schema:
    """``PATCH`` of a model: only the descriptive fields change."""
    return {
        "type": "object",
        "properties": _model_fields(),
        "additionalProperties": False,
    }


def _file() -> Schema:
    """An uploaded file as answered: every field is always there."""
    schema: Schema = {
        "type": "object",
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
            "created_at": TIME,
            "expires_at": _nullable(TIME),
            "urls": {
                "type": "object",
                "required": ["get"],
                "properties": {"get": {"type": "string"}},
            },
        },
    }
    schema["required"] = list(schema["properties"])
    return schema


def _file_upload() -> Schema:
    """The multipart body of ``POST /v1/files``."""
    return {
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
    }


def _account() -> Schema:
    """The account a token belongs to."""
    return {
        "type": "object",
        "required": ["type", "username", "name", "github_url", "avatar_url"],
        "properties": {
            "type": {"type": "string", "enum": ["user", "organization"]},
            "username": {"type": "string"},
            "name": {"type": "string"},
            "github_url": _TEXT_OR_NULL,
            "avatar_url": _TEXT_OR_NULL,
        },
    }


def _hardware() -> Schema:
    """One hardware SKU this server offers."""
    return {
        "type": "object",
        "required": ["sku", "name"],
        "properties": {"sku": {"type": "string"}, "name": {"type": "string"}},
    }


def _usage() -> Schema:
    """``GET /v1/usage``: billed seconds and cost per group."""
    seconds = {"type": "number", "minimum": 0}
    group = {
        "type": "object",
        "required": [
            "key", "setup_seconds", "idle_seconds", "active_seconds", "total_seconds", "cost"
        ],
        "properties": {
            "key": _TEXT_OR_NULL,
            "setup_seconds": seconds,
            "idle_seconds": seconds,
            "active_seconds": seconds,
            "total_seconds": seconds,
            "cost": {"type": "number"},
        },
    }  # fmt: skip
    return {
        "type": "object",
        "required": ["account", "start", "end", "group_by", "results", "total"],
        "properties": {
            "account": {"type": "string"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "group_by": {"type": "string", "enum": ["day", "model", "hardware", "deployment"]},
            "results": {"type": "array", "items": group},
            "total": group,
        },
    }


def _credit() -> Schema:
    """An account's credit: null amounts mean unlimited."""
    number_or_null = {"type": ["number", "null"]}
    return {
        "type": "object",
        "required": ["account", "credit", "remaining", "set_at"],
        "properties": {
            "account": {"type": "string"},
            "credit": number_or_null,
            "remaining": number_or_null,
            "set_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }


def _collection() -> Schema:
    """A curated list of models."""
    return {
        "type": "object",
        "required": ["name", "slug", "description"],
        "properties": {
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "description": _TEXT_OR_NULL,
            "full_description": _TEXT_OR_NULL,
            "models": {"type": "array", "items": ref("Model")},
        },
    }


def _search_result() -> Schema:
    """``GET /v1/search``: models, collections and pages that match."""
    return {
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
                        "model": ref("Model"),
                        "metadata": {"type": "object"},
                    },
                },
            },
            "collections": {"type": "array", "items": ref("Collection")},
            "pages": {"type": "array"},
        },
    }


def components(hardware_skus: list[str]) -> dict[str, Schema]:
    """The document's ``components.schemas``; ``hardware_skus`` is what this server
    offers (models are created with one of them)."""
    return {
        "Problem": _problem(),
        "Prediction": _prediction(),
        "PredictionRequest": _prediction_request(),
        "PredictionCreate": _prediction_create(),
        "Training": _training(),
        "TrainingRequest": _training_request(),
        "Version": _version(),
        "Model": _model(),
        "Build": _build(),
        "ModelCreate": _model_create(hardware_skus),
        "ModelUpdate": _model_update(),
        "File": _file(),
        "FileUpload": _file_upload(),
        "Account": _account(),
        "Hardware": _hardware(),
        "Usage": _usage(),
        "Credit": _credit(),
        "Collection": _collection(),
        "SearchResult": _search_result(),
        "PredictionPage": page_of("Prediction"),
        "TrainingPage": page_of("Training"),
        "ModelPage": page_of("Model"),
        "VersionPage": page_of("Version"),
        "FilePage": page_of("File"),
        "CollectionPage": page_of("Collection"),
    }
