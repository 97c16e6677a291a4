"""The predictor signature as data: inspector, OpenAPI, validation, output encoding.

Stdlib only (it runs in the model's environment too); imports only ``vendo.sdk``.
"""

from __future__ import annotations

from .encoding import encode_output
from .inspector import inspect_predictor, inspect_setup, resolve_type
from .openapi import openapi_document
from .records import FieldType, InputField, LoadError, OutputType, PredictorInfo
from .validation import (
    InputValidationError,
    ValidatedInput,
    ignored_inputs_warning,
    validate_input,
    validate_value,
)

__all__ = [
    "FieldType",
    "InputField",
    "InputValidationError",
    "LoadError",
    "OutputType",
    "PredictorInfo",
    "ValidatedInput",
    "encode_output",
    "ignored_inputs_warning",
    "inspect_predictor",
    "inspect_setup",
    "openapi_document",
    "resolve_type",
    "validate_input",
    "validate_value",
]
