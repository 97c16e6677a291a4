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
    # The row's values straight from its __dict__, where the ORM keeps them (a loaded
    # row has every column there, a new one what was set; unset reads None, as through
    # the mapped attributes): twenty attribute reads through SQLAlchemy's descriptors
    # cost more than the rest of this function.
    values = row.__dict__
    get = values.get
    pid, status = values["id"], get("status")
    urls = {
        "get": f"{base}/v1/predictions/{pid}",
        "cancel": f"{base}/v1/predictions/{pid}/cancel",
        "web": f"{base}/p/{pid}",
    }
    if streamable or get("stream"):
        urls["stream"] = f"{base}/v1/predictions/{pid}/stream?token={stream_token(p, pid)}"
    body: dict[str, Any] = {
        "id": pid,
        "model": get("model"),
        "version": get("version_id"),
        "input": get("input"),
        "output": p.storage.render(get("output"), base, owner),
        "logs": get("logs") or "",
        "error": get("error"),
        "status": status,
        "created_at": iso(get("created_at")),
        "started_at": iso(get("started_at")),
        "completed_at": iso(get("completed_at")),
        "urls": urls,
        "metrics": (get("metrics") or {}) if status in TERMINAL else None,
        "data_removed": bool(get("data_removed")),
        "source": get("source"),
        "deployment": get("deployment"),
    }
    deadline = get("deadline")
    if deadline is not None:
        body["deadline"] = iso(deadline)
    if get("kind") == "training":
        body["destination"] = get("destination")
        urls["get"] = f"{base}/v1/trainings/{pid}"
        urls["cancel"] = f"{base}/v1/trainings/{pid}/cancel"
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
