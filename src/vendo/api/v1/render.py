"""Records -> the JSON objects of Replicate's API (spec/replicate-api.md section 3).

Every documented key is present (``null`` when unset); keys inside ``urls`` are left
out rather than ``null`` because the Python client rejects ``null`` there.
"""

from __future__ import annotations

import hmac
from typing import Any

from vendo.api.v1.context import Platform, call, iso
from vendo.store import (
    TERMINAL,
    BuildRow,
    FileRow,
    ModelRow,
    PredictionRow,
    UserRow,
    VersionRow,
)

__all__ = [
    "account_json",
    "build_json",
    "file_json",
    "is_iterator",
    "iterator_versions",
    "model_json",
    "prediction_json",
    "stream_token",
    "verify_stream_token",
    "version_json",
]


def is_iterator(schema: dict[str, Any] | None) -> bool:
    output = ((schema or {}).get("components") or {}).get("schemas", {}).get("Output") or {}
    return output.get("x-cog-array-type") == "iterator"


def stream_token(p: Platform, prediction_id: str) -> str:
    # The stream URL is a capability: the JS client fetches it with no Authorization.
    return p.storage.signature(prediction_id, "stream", 0)


def verify_stream_token(p: Platform, prediction_id: str, token: str) -> bool:
    # as bytes: compare_digest raises on str with non-ASCII characters (a 500)
    expected = stream_token(p, prediction_id).encode()
    return hmac.compare_digest(expected, token.encode("utf-8", "replace"))


def prediction_json(
    p: Platform,
    base: str,
    row: PredictionRow,
    *,
    owner: str,
    streamable: bool = False,
) -> dict[str, Any]:
    """The Prediction object. ``owner`` is the owner's username (output URLs are signed
    for it); ``streamable`` adds ``urls.stream``."""
    urls = {
        "get": f"{base}/v1/predictions/{row.id}",
        "cancel": f"{base}/v1/predictions/{row.id}/cancel",
        "web": f"{base}/p/{row.id}",
    }
    if streamable or row.stream:
        urls["stream"] = f"{base}/v1/predictions/{row.id}/stream?token={stream_token(p, row.id)}"
    body: dict[str, Any] = {
        "id": row.id,
        "model": row.model,
        "version": row.version_id,
        "input": row.input,
        "output": p.storage.render(row.output, base, owner),
        "logs": row.logs or "",
        "error": row.error,
        "status": row.status,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "urls": urls,
        "metrics": (row.metrics or {}) if row.status in TERMINAL else None,
        "data_removed": bool(row.data_removed),
        "source": row.source,
        "deployment": row.deployment,
    }
    if row.deadline is not None:
        body["deadline"] = iso(row.deadline)
    if row.kind == "training":
        body["destination"] = row.destination
        urls["get"] = f"{base}/v1/trainings/{row.id}"
        urls["cancel"] = f"{base}/v1/trainings/{row.id}/cancel"
    return body


def version_json(version: VersionRow) -> dict[str, Any]:
    return {
        "id": version.id,
        "created_at": iso(version.created_at),
        "cog_version": version.cog_version or "",
        "openapi_schema": version.openapi_schema or {},
    }


def build_json(base: str, model: ModelRow, build: BuildRow) -> dict[str, Any]:
    """A model's accepted push (a Vendo addition): ``status`` building, failed or
    succeeded; ``version`` the id the version has or will have; ``error`` why it
    failed; ``urls.log`` its build log."""
    path = f"{base}/v1/models/{model.owner.username}/{model.name}/builds/{build.id}"
    return {
        "id": build.id,
        "status": build.status,
        "version": build.version_id,
        "error": build.error,
        "created_at": iso(build.created_at),
        "completed_at": iso(build.completed_at),
        "urls": {"get": path, "log": f"{path}/log"},
    }


def model_json(
    base: str,
    model: ModelRow,
    latest: VersionRow | None,
    default_example: dict[str, Any] | None = None,
    build: BuildRow | None = None,
) -> dict[str, Any]:
    """The Model object, plus Vendo's ``latest_build`` (the latest accepted push, or
    None), which Replicate's clients ignore."""
    owner = model.owner.username
    return {
        "url": f"{base}/{owner}/{model.name}",
        "owner": owner,
        "name": model.name,
        "description": model.description,
        "visibility": model.visibility,
        "github_url": model.github_url,
        "paper_url": model.paper_url,
        "license_url": model.license_url,
        "weights_url": model.weights_url,
        "cover_image_url": model.cover_image_url,
        "run_count": model.run_count,
        "is_official": False,
        "hardware": model.hardware,
        "default_example": default_example,
        "latest_version": version_json(latest) if latest is not None else None,
        "latest_build": build_json(base, model, build) if build is not None else None,
    }


def file_json(base: str, row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "etag": row.md5,
        "checksums": {"sha256": row.sha256, "md5": row.md5},
        "metadata": row.metadata_ or {},
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "urls": {"get": f"{base}/v1/files/{row.id}"},
    }


def account_json(user: UserRow) -> dict[str, Any]:
    return {
        "type": user.type,
        "username": user.username,
        "name": user.name or user.username,
        "github_url": user.github_url,
        "avatar_url": user.avatar_url,
    }


async def iterator_versions(p: Platform, version_ids: set[str]) -> set[str]:
    """Which of ``version_ids`` have an iterator Output (each version read once)."""
    cache = p.iterator_versions
    for version_id in version_ids - set(cache):
        version = await call(p.store.catalog.version, version_id)
        cache[version_id] = is_iterator(version.openapi_schema if version else None)
    return {v for v in version_ids if cache.get(v)}
