"""The inputs of a ``vendo serve-model`` prediction: checked against the model's
OpenAPI document (as the runner reported it), secrets masked for the echo, and input
files fetched into the prediction's folder before the run starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vendo.files.fetch import fetch_input, is_fetchable
from vendo.schema import InputValidationError, validate_input
from vendo.serving.records import SECRET_MASK, FetchLimits

__all__ = ["InputSchema", "fetch_files", "needs_fetch"]


def _secret_names(schema: Mapping[str, Any]) -> frozenset[str]:
    props = schema.get("properties", {})
    return frozenset(
        name
        for name, prop in props.items()
        if prop.get("x-cog-secret") or prop.get("format") == "password"
    )


def _is_uri(prop: Mapping[str, Any]) -> bool:
    if prop.get("format") == "uri":
        return True
    if prop.get("type") == "array":
        return _is_uri(prop.get("items", {}))
    return any(_is_uri(arm) for arm in prop.get("anyOf", ()))


_NOT_AN_OBJECT = [
    {"loc": ["body", "input"], "msg": "Input should be an object", "type": "value_error"}
]


@dataclass(frozen=True)
class InputSchema:
    """One kind of work's input schema, read once from its runner's document."""

    schema: dict[str, Any]
    components: dict[str, Any]
    secrets: frozenset[str]
    files: frozenset[str]
    iterator_output: bool
    streaming: bool

    @classmethod
    def of(cls, document: Mapping[str, Any], kind: str) -> InputSchema:
        """``kind``: ``predictions`` or ``trainings``."""
        training = kind == "trainings"
        components = document.get("components", {}).get("schemas", {})
        schema = components.get("TrainingInput" if training else "Input")
        schema = schema or {"type": "object", "properties": {}}
        output = components.get("TrainingOutput" if training else "Output", {})
        post = document.get("paths", {}).get("/predictions", {}).get("post", {})
        props = schema.get("properties", {})
        return cls(
            schema=schema,
            components=components,
            secrets=_secret_names(schema),
            files=frozenset(n for n, p in props.items() if _is_uri(p)),
            iterator_output=output.get("x-cog-array-type") == "iterator",
            streaming=not training and bool(post.get("x-cog-streaming")),
        )

    def validate(self, payload: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(validated input, input as echoed with secrets masked); raises
        InputValidationError with Cog's ``detail`` entries."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InputValidationError(_NOT_AN_OBJECT)
        validated = validate_input(self.schema, payload, self.components)
        masked = dict(validated)
        for name in self.secrets:
            if name in masked and masked[name] is not None:
                masked[name] = SECRET_MASK
        # Ignored, but named to the runner (valued null): it warns about each in the
        # prediction's logs, with the closest known input.
        return {**validated, **dict.fromkeys(validated.unknown)}, masked


def needs_fetch(validated: Mapping[str, Any], names: frozenset[str]) -> bool:
    """Whether any of the file inputs ``names`` holds an address to download."""
    for name in names:
        value = validated.get(name)
        values = value if isinstance(value, list) else [value]
        if any(is_fetchable(v) for v in values):
            return True
    return False


async def fetch_files(
    run_input: Mapping[str, Any], names: frozenset[str], folder: Path, limits: FetchLimits
) -> dict[str, Any]:
    """``run_input`` with each file input's addresses downloaded into ``folder`` (local
    paths instead); raises VendoError or OSError when one cannot be."""

    async def fetch(value: Any) -> Any:
        if not is_fetchable(value):
            return value
        # fetch_input's own client connects only where the address policy allows
        path = await fetch_input(
            value,
            folder,
            max_bytes=limits.max_bytes,
            max_data_uri_bytes=limits.max_data_uri_bytes,
            timeout=limits.timeout,
            allow_private=limits.allow_private,
        )
        return str(path)

    fetched = dict(run_input)
    for name in names:
        value = fetched.get(name)
        if isinstance(value, list):
            fetched[name] = [await fetch(v) for v in value]
        elif value is not None:
            fetched[name] = await fetch(value)
    return fetched
