"""spec/cog.md §10 item 27: `python -m vendo.runner openapi` on fixture projects, key for key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .driver import run_openapi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _ok(body: str = "") -> dict[str, Any]:
    schema = {"title": body} if body else {}
    return {
        "description": "Successful Response",
        "content": {"application/json": {"schema": schema}},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": _ref("HTTPValidationError")}},
}

HELLO_DOCUMENT = {
    "openapi": "3.0.2",
    "info": {"title": "Cog", "version": "0.1.0"},
    "paths": {
        "/": {
            "get": {
                "summary": "Root",
                "operationId": "root__get",
                "responses": {"200": _ok("Response Root  Get")},
            }
        },
        "/health-check": {
            "get": {
                "summary": "Healthcheck",
                "operationId": "healthcheck_health_check_get",
                "responses": {"200": _ok("Response Healthcheck Health Check Get")},
            }
        },
        "/predictions": {
            "post": {
                "summary": "Predict",
                "description": "Run a single prediction on the model",
                "operationId": "predict_predictions_post",
                "parameters": [
                    {
                        "in": "header",
                        "name": "prefer",
                        "required": False,
                        "schema": {"title": "Prefer", "type": "string"},
                    }
                ],
                "requestBody": {
                    "content": {"application/json": {"schema": _ref("PredictionRequest")}}
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": _ref("PredictionResponse")}},
                    },
                    "422": VALIDATION_ERROR,
                },
            }
        },
        "/predictions/{prediction_id}/cancel": {
            "post": {
                "summary": "Cancel",
                "description": "Cancel a running prediction",
                "operationId": "cancel_predictions__prediction_id__cancel_post",
                "parameters": [
                    {
                        "in": "path",
                        "name": "prediction_id",
                        "required": True,
                        "schema": {"title": "Prediction ID", "type": "string"},
                    }
                ],
                "responses": {"200": _ok(), "422": VALIDATION_ERROR},
            }
        },
    },
    "components": {
        "schemas": {
            "Input": {
                "title": "Input",
                "type": "object",
                "properties": {
                    "text": {
                        "x-order": 0,
                        "title": "Text",
                        "type": "string",
                        "description": "Text to prefix",
                    }
                },
                "required": ["text"],
            },
            "Output": {"title": "Output", "type": "string"},
            "PredictionRequest": {
                "title": "PredictionRequest",
                "type": "object",
                "properties": {
                    "id": {"title": "Id", "type": "string"},
                    "input": _ref("Input"),
                },
            },
            "PredictionResponse": {
                "title": "PredictionResponse",
                "type": "object",
                "properties": {
                    "input": _ref("Input"),
                    "output": _ref("Output"),
                    "id": {"title": "Id", "type": "string"},
                    "version": {"title": "Version", "type": "string"},
                    "created_at": {"title": "Created At", "type": "string", "format": "date-time"},
                    "started_at": {"title": "Started At", "type": "string", "format": "date-time"},
                    "completed_at": {
                        "title": "Completed At",
                        "type": "string",
                        "format": "date-time",
                    },
                    "status": _ref("Status"),
                    "error": {"title": "Error", "type": "string"},
                    "logs": {"title": "Logs", "type": "string", "default": ""},
                    "metrics": {"title": "Metrics", "type": "object"},
                },
            },
            "Status": {
                "title": "Status",
                "description": "An enumeration.",
                "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
                "type": "string",
            },
            "HTTPValidationError": {
                "title": "HTTPValidationError",
                "type": "object",
                "properties": {
                    "detail": {
                        "title": "Detail",
                        "type": "array",
                        "items": _ref("ValidationError"),
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
    },
}


def test_hello_document_is_exact() -> None:
    result = run_openapi(FIXTURES / "rt_hello", "--ref", "predict.py:Predictor")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == HELLO_DOCUMENT


def test_merged_predict_and_train_document() -> None:
    result = run_openapi(
        FIXTURES / "rt_schema", "--ref", "predict.py:Predictor", "--train-ref", "train.py:train"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document["paths"]) == [
        "/",
        "/health-check",
        "/predictions",
        "/predictions/{prediction_id}/cancel",
        "/trainings",
        "/trainings/{training_id}/cancel",
    ]
    assert document["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    train_post = document["paths"]["/trainings"]["post"]
    assert train_post["operationId"] == "train_trainings_post"
    assert "x-cog-streaming" not in train_post
    schemas = document["components"]["schemas"]
    assert set(schemas) == {
        "Input", "Output", "style", "PredictionRequest", "PredictionResponse", "Status",
        "HTTPValidationError", "ValidationError", "TrainingInput", "TrainingOutput", "mode",
        "TrainingRequest", "TrainingResponse",
    }  # fmt: skip
    assert schemas["Input"] == {
        "title": "Input",
        "type": "object",
        "properties": {
            "prompt": {
                "x-order": 0,
                "title": "Prompt",
                "type": "string",
                "description": "What to write about",
                "minLength": 1,
                "maxLength": 100,
            },
            "max_tokens": {
                "x-order": 1,
                "title": "Max Tokens",
                "type": "integer",
                "default": 16,
                "minimum": 1,
                "maximum": 512,
            },
            "temperature": {"x-order": 2, "title": "Temperature", "type": "number", "default": 0.7},
            "style": {"x-order": 3, "allOf": [_ref("style")], "default": "plain"},
            "image": {
                "x-order": 4,
                "title": "Image",
                "type": "string",
                "format": "uri",
                "nullable": True,
                "description": "An image",
            },
            "api_key": {
                "x-order": 5,
                "title": "Api Key",
                "type": "string",
                "format": "password",
                "writeOnly": True,
                "x-cog-secret": True,
            },
            "stops": {
                "x-order": 6,
                "title": "Stops",
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "pattern": "^[a-z]+$",
            },
            "seed": {
                "x-order": 7,
                "title": "Seed",
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "nullable": True,
            },
            "old": {
                "x-order": 8,
                "title": "Old",
                "type": "boolean",
                "default": False,
                "deprecated": True,
            },
        },
        "required": ["prompt"],
    }
    assert schemas["style"] == {
        "title": "style",
        "description": "An enumeration.",
        "enum": ["plain", "fancy"],
        "type": "string",
    }
    assert schemas["Output"] == {
        "title": "Output",
        "type": "array",
        "items": {"type": "string"},
        "x-cog-array-type": "iterator",
        "x-cog-array-display": "concatenate",
    }
    assert schemas["TrainingInput"] == {
        "title": "TrainingInput",
        "type": "object",
        "properties": {
            "data": {"x-order": 0, "title": "Data", "type": "string", "format": "uri"},
            "mode": {"x-order": 1, "allOf": [_ref("mode")], "default": "b"},
        },
        "required": ["data"],
    }
    assert schemas["TrainingOutput"] == {
        "title": "TrainingOutput",
        "type": "object",
        "properties": {
            "weights": {"title": "Weights", "type": "string", "format": "uri"},
            "loss": {"title": "Loss", "type": "number"},
        },
        "required": ["weights"],
    }
    assert schemas["TrainingRequest"]["properties"]["input"] == _ref("TrainingInput")
    assert schemas["TrainingResponse"]["properties"]["output"] == _ref("TrainingOutput")


def test_openapi_load_error_exits_1_with_message() -> None:
    result = run_openapi(FIXTURES / "rt_bad_input", "--ref", "predict.py:Predictor")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "predict(): input 'name': ge/le only apply to int and float inputs" in result.stderr
