"""The ``components.schemas`` of the deployments routes (``/v1/deployments``)."""

from __future__ import annotations

from vendo.api.v1.openapi_schemas import NAME_PATTERN, Schema, page_of, ref

__all__ = ["deployment_schemas"]

_INSTANCES: Schema = {"type": "integer", "minimum": 0, "maximum": 100}
_SCALE = ("min_instances", "max_instances")


def _deployment() -> Schema:
    """A deployment and its current release."""
    configuration = {
        "type": "object",
        "required": ["hardware", *_SCALE],
        "properties": {"hardware": {"type": "string"}} | {n: _INSTANCES for n in _SCALE},
    }
    release = {
        "type": "object",
        "required": ["number", "model", "version", "created_at", "created_by", "configuration"],
        "properties": {
            "number": {"type": "integer", "minimum": 1},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": ref("Account"),
            "configuration": configuration,
        },
    }
    return {
        "type": "object",
        "required": ["owner", "name", "current_release"],
        "properties": {
            "owner": {"type": "string"},
            "name": {"type": "string"},
            "current_release": release,
        },
    }


def _deployment_create(hardware_skus: list[str]) -> Schema:
    """``POST /v1/deployments``: every field is required."""
    return {
        "type": "object",
        "required": ["name", "model", "version", "hardware", *_SCALE],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "model": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
            "version": {"type": "string", "minLength": 1},
            "hardware": {"type": "string", "enum": hardware_skus},
        }
        | {n: _INSTANCES for n in _SCALE},
    }


def _deployment_update(hardware_skus: list[str]) -> Schema:
    """``PATCH`` of a deployment: any of these, at least one; each change is a release."""
    return {
        "type": "object",
        "minProperties": 1,
        "properties": {
            "version": {"type": "string", "minLength": 1},
            "hardware": {"type": "string", "enum": hardware_skus},
        }
        | {n: _INSTANCES for n in _SCALE},
        "additionalProperties": False,
    }


def deployment_schemas(hardware_skus: list[str]) -> dict[str, Schema]:
    """Deployments are created on one of ``hardware_skus`` (what this server offers)."""
    return {
        "Deployment": _deployment(),
        "DeploymentCreate": _deployment_create(hardware_skus),
        "DeploymentUpdate": _deployment_update(hardware_skus),
        "DeploymentPage": page_of("Deployment"),
    }
