"""Records -> the OpenAPI document of spec/cog.md §7 (Cog's shape, key for key)."""

from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Optional

from vendo.sdk.types import Secret

from . import records as kinds
from .records import FieldType, InputField, OutputType, PredictorInfo

__all__ = [
    "OPENAPI_VERSION",
    "enum_component",
    "input_property",
    "input_schema",
    "openapi_document",
    "output_schema",
    "title",
    "type_schema",
]

OPENAPI_VERSION = "3.0.2"
STATUSES = ["starting", "processing", "succeeded", "canceled", "failed"]
_JSON_TYPES = {
    kinds.STR: "string",
    kinds.INT: "integer",
    kinds.FLOAT: "number",
    kinds.BOOL: "boolean",
}


def title(name: str) -> str:
    """``max_tokens`` -> ``Max Tokens``, as Cog titles inputs and fields."""
    return name.replace("_", " ").title()


def type_schema(ft: FieldType) -> Dict[str, Any]:
    schema: Dict[str, Any]
    if ft.kind in _JSON_TYPES:
        schema = {"type": _JSON_TYPES[ft.kind]}
    elif ft.kind in (kinds.PATH, kinds.FILE):
        schema = {"type": "string", "format": "uri"}
    elif ft.kind == kinds.SECRET:
        schema = {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True}
    elif ft.kind == kinds.LIST:
        assert ft.items is not None
        schema = {"type": "array", "items": type_schema(ft.items)}
    elif ft.kind == kinds.UNION:
        schema = {"anyOf": [type_schema(m) for m in ft.members]}
    elif ft.kind == kinds.MODEL:
        properties = {}
        required = []
        for name, field_type, is_required in ft.fields:
            properties[name] = {"title": title(name), **type_schema(field_type)}
            if is_required:
                required.append(name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
    else:
        assert ft.kind == kinds.OBJECT
        schema = {"type": "object"}
        if ft.value is not None:
            schema["additionalProperties"] = type_schema(ft.value)
    if ft.nullable:
        schema["nullable"] = True
    return schema


def _json_value(value: Any) -> Any:
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def input_property(field: InputField) -> Dict[str, Any]:
    prop: Dict[str, Any] = {"x-order": field.order}
    if field.choices is not None:
        prop["allOf"] = [{"$ref": f"#/components/schemas/{field.name}"}]
        if field.type.nullable:
            prop["nullable"] = True
    else:
        prop["title"] = title(field.name)
        prop.update(type_schema(field.type))
    if field.has_default:
        prop["default"] = _json_value(field.default)
    optional = {
        "description": field.description,
        "minimum": field.ge,
        "maximum": field.le,
        "minLength": field.min_length,
        "maxLength": field.max_length,
        "pattern": field.regex,
        "deprecated": field.deprecated,
        "x-cog-accept": field.accept,
    }
    prop.update({k: v for k, v in optional.items() if v is not None})
    return prop


def enum_component(field: InputField) -> Dict[str, Any]:
    assert field.choices is not None
    kind = (
        field.type.items.kind
        if field.type.kind == kinds.LIST and field.type.items
        else field.type.kind
    )
    return {
        "title": field.name,
        "description": "An enumeration.",
        "enum": list(field.choices),
        "type": _JSON_TYPES[kind],
    }


def input_schema(info: PredictorInfo, name: str = "Input") -> Dict[str, Any]:
    schema: Dict[str, Any] = {
        "title": name,
        "type": "object",
        "properties": {f.name: input_property(f) for f in info.inputs},
    }
    required = [f.name for f in info.inputs if f.required]
    if required:
        schema["required"] = required
    return schema


def output_schema(output: OutputType, name: str = "Output") -> Dict[str, Any]:
    if output.iterator:
        schema: Dict[str, Any] = {
            "title": name,
            "type": "array",
            "items": type_schema(output.type),
            "x-cog-array-type": "iterator",
        }
        if output.concatenate:
            schema["x-cog-array-display"] = "concatenate"
        return schema
    return {"title": name, **type_schema(output.type)}


def _json_response(ref: Optional[str], title_: Optional[str] = None) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"$ref": f"#/components/schemas/{ref}"} if ref else {}
    if title_:
        schema["title"] = title_
    return {
        "description": "Successful Response",
        "content": {"application/json": {"schema": schema}},
    }


def _validation_response() -> Dict[str, Any]:
    return {
        "description": "Validation Error",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }


def _run_paths(noun: str, prefix: str, streaming: bool) -> Dict[str, Any]:
    """``/predictions`` or ``/trainings`` with its cancel route."""
    singular = noun[:-1]
    create: Dict[str, Any] = {
        "summary": singular.capitalize() if noun == "trainings" else "Predict",
        "description": f"Run a single {'training' if noun == 'trainings' else 'prediction'} "
        "on the model",
        "operationId": f"{'train' if noun == 'trainings' else 'predict'}_{noun}_post",
        "parameters": [
            {
                "in": "header",
                "name": "prefer",
                "required": False,
                "schema": {"title": "Prefer", "type": "string"},
            }
        ],
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{prefix}Request"}}
            }
        },
        "responses": {
            "200": _json_response(f"{prefix}Response"),
            "422": _validation_response(),
        },
    }
    if streaming:
        create["x-cog-streaming"] = True
    id_name = f"{singular}_id"
    cancel = {
        "summary": "Cancel",
        "description": f"Cancel a running {singular}",
        "operationId": f"cancel_{noun}__{id_name}__cancel_post",
        "parameters": [
            {
                "in": "path",
                "name": id_name,
                "required": True,
                "schema": {"title": title(id_name).replace(" Id", " ID"), "type": "string"},
            }
        ],
        "responses": {"200": _json_response(None), "422": _validation_response()},
    }
    return {f"/{noun}": {"post": create}, f"/{noun}/{{{id_name}}}/cancel": {"post": cancel}}


def _request_component(prefix: str, input_name: str) -> Dict[str, Any]:
    return {
        "title": f"{prefix}Request",
        "type": "object",
        "properties": {
            "id": {"title": "Id", "type": "string"},
            "input": {"$ref": f"#/components/schemas/{input_name}"},
        },
    }


def _response_component(prefix: str, input_name: str, output_name: str) -> Dict[str, Any]:
    def timestamp(name: str) -> Dict[str, Any]:
        return {"title": title(name), "type": "string", "format": "date-time"}

    return {
        "title": f"{prefix}Response",
        "type": "object",
        "properties": {
            "input": {"$ref": f"#/components/schemas/{input_name}"},
            "output": {"$ref": f"#/components/schemas/{output_name}"},
            "id": {"title": "Id", "type": "string"},
            "version": {"title": "Version", "type": "string"},
            "created_at": timestamp("created_at"),
            "started_at": timestamp("started_at"),
            "completed_at": timestamp("completed_at"),
            "status": {"$ref": "#/components/schemas/Status"},
            "error": {"title": "Error", "type": "string"},
            "logs": {"title": "Logs", "type": "string", "default": ""},
            "metrics": {"title": "Metrics", "type": "object"},
        },
    }


_SHARED_COMPONENTS: Dict[str, Any] = {
    "Status": {
        "title": "Status",
        "description": "An enumeration.",
        "enum": STATUSES,
        "type": "string",
    },
    "HTTPValidationError": {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {
                "title": "Detail",
                "type": "array",
                "items": {"$ref": "#/components/schemas/ValidationError"},
            }
        },
    },
    "ValidationError": {
        "title": "ValidationError",
        "required": ["loc", "msg", "type"],
        "type": "object",
        "properties": {
            "loc": {
                "title": "Location",
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
    },
}


def _enums(info: PredictorInfo) -> Dict[str, Any]:
    return {f.name: enum_component(f) for f in info.inputs if f.choices is not None}


def openapi_document(
    predict: Optional[PredictorInfo],
    train: Optional[PredictorInfo] = None,
    *,
    version: str = "0.1.0",
) -> Dict[str, Any]:
    """The merged document for a model's ``run`` and optional ``train`` (predict wins)."""
    paths: Dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Root",
                "operationId": "root__get",
                "responses": {"200": _json_response(None, "Response Root  Get")},
            }
        },
        "/health-check": {
            "get": {
                "summary": "Healthcheck",
                "operationId": "healthcheck_health_check_get",
                "responses": {"200": _json_response(None, "Response Healthcheck Health Check Get")},
            }
        },
    }
    schemas: Dict[str, Any] = copy.deepcopy(_SHARED_COMPONENTS)
    parts: List[Any] = []
    if predict is not None:
        parts.append((predict, "Prediction", "predictions", "Input", "Output"))
    if train is not None:
        parts.append((train, "Training", "trainings", "TrainingInput", "TrainingOutput"))
    for info, prefix, noun, input_name, output_name in parts:
        paths.update(_run_paths(noun, prefix, info.streaming and noun == "predictions"))
        for name, component in _enums(info).items():
            schemas.setdefault(name, component)
        schemas[input_name] = input_schema(info, input_name)
        schemas[output_name] = output_schema(info.output, output_name)
        schemas[f"{prefix}Request"] = _request_component(prefix, input_name)
        schemas[f"{prefix}Response"] = _response_component(prefix, input_name, output_name)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Cog", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
