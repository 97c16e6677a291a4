"""File routes: upload (multipart), metadata, list, delete, signed download."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from vendo.api.body import parse_json, text_errors
from vendo.api.responses import JSONResponse
from vendo.api.v1.context import base_url, call, caller, page, platform
from vendo.api.v1.policy import owns
from vendo.api.v1.render import file_json
from vendo.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RequestError,
)
from vendo.files.storage import guess_type
from vendo.store import FileRow, utcnow

__all__ = ["routes"]


async def _metadata(value: Any, max_depth: int) -> dict[str, Any]:
    # 1.0.7 sends a JSON text field; the JS client a JSON Blob (a file part).
    if value is None:
        return {}
    raw = await value.read() if isinstance(value, UploadFile) else value
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not raw.strip():
        return {}
    try:
        # the same strict JSON as request bodies: NaN, deep nesting or a NUL would
        # otherwise fail the store (a 500), not the caller
        parsed = parse_json(raw, max_depth=max_depth)
    except RequestError as exc:
        raise InvalidInput(
            [FieldError("metadata", "json", f"metadata must be a JSON object: {exc.detail}")]
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidInput([FieldError("metadata", "json", "metadata must be a JSON object")])
    return parsed


async def upload(request: Request) -> Response:
    """Upload a file (multipart/form-data)."""
    who = await caller(request)
    p = platform(request)
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isascii() and length.isdigit() and len(length) < 20 else 0
    if declared > p.settings.max_upload_bytes + 64 * 1024:
        raise PayloadTooLarge(f"uploads are limited to {p.settings.max_upload_bytes} bytes")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send the file as multipart/form-data with a 'content' part")
    async with request.form(max_files=4, max_fields=16) as form:
        content = form.get("content")
        if not isinstance(content, UploadFile):
            raise InvalidInput(
                [FieldError("content", "missing", "a file part named 'content' is required")]
            )
        filename = form.get("filename")
        name = (filename if isinstance(filename, str) and filename else None) or (
            content.filename or "file"
        )
        type_field = form.get("type")
        content_type = (
            (type_field if isinstance(type_field, str) and type_field else None)
            or content.content_type
            or guess_type(name)
        )
        if content_type == "application/octet-stream":
            content_type = guess_type(name)
        errors = text_errors({"filename": name, "type": content_type})
        if errors:
            raise InvalidInput(errors)
        metadata = await _metadata(form.get("metadata"), p.settings.max_json_depth)
        row = await call(
            lambda: p.storage.save_upload(
                who.account.id,
                content.file,
                name=name,
                content_type=content_type,
                metadata=metadata,
            )
        )
    return JSONResponse(file_json(base_url(request), row), status_code=201)


async def _own_file(request: Request) -> FileRow:
    who = await caller(request)
    file_id = request.path_params["id"]
    row = await call(platform(request).store.files.get, file_id)
    if row is None or row.kind != "upload" or not owns(who, row.owner_id) or _expired(row):
        raise NotFound(f"file {file_id} not found")
    return row


def _expired(row: FileRow) -> bool:
    return row.expires_at is not None and row.expires_at <= utcnow()


async def get_file(request: Request) -> Response:
    """Get a file's metadata."""
    row = await _own_file(request)
    return JSONResponse(file_json(base_url(request), row))


async def list_files(request: Request) -> Response:
    """List your uploaded files."""
    who = await caller(request)
    p = platform(request)
    rows = await call(
        lambda: p.store.files.page(who.account.id, cursor=request.query_params.get("cursor"))
    )
    base = base_url(request)
    return page(request, [file_json(base, r) for r in rows], rows.next_cursor, rows.previous_cursor)


async def delete_file(request: Request) -> Response:
    """Delete a file."""
    row = await _own_file(request)
    await call(platform(request).storage.delete, row)
    return Response(status_code=204)


async def download(request: Request) -> Response:
    """Download a file through a signed URL."""
    # A capability URL: no Authorization needed, and one sent along is ignored.
    p = platform(request)
    file_id = request.path_params["id"]
    params = request.query_params
    if not p.storage.verify(
        file_id, params.get("owner", ""), params.get("expiry", ""), params.get("signature", "")
    ):
        raise Forbidden("the download link is invalid or has expired")
    row = await call(p.store.files.get, file_id)
    if row is None or _expired(row):
        raise NotFound(f"file {file_id} not found")
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "private, max-age=3600"}
    path = p.storage.local_path(row)
    if path is not None:
        if not path.exists():
            raise NotFound(f"file {file_id} not found")
        return FileResponse(
            path,
            media_type=row.content_type,
            # the model's own file name: `vendo run` saves the file under it, as `predict`
            filename=row.name,
            content_disposition_type="inline",
            headers=headers,
        )
    # in a bucket: streamed through this server (vendo.files.storage says why)
    try:
        chunks = await call(p.storage.chunks, row)
    except FileNotFoundError:
        raise NotFound(f"file {file_id} not found") from None
    headers["Content-Disposition"] = _inline(row.name)
    headers["Content-Length"] = str(row.size)
    return StreamingResponse(
        iterate_in_threadpool(chunks), media_type=row.content_type, headers=headers
    )


def _inline(name: str) -> str:
    """``inline; filename=...`` as Starlette's FileResponse writes it."""
    quoted = quote(name)
    if quoted != name:
        return f"inline; filename*=utf-8''{quoted}"
    return f'inline; filename="{name}"'


routes = [
    Route("/v1/files", upload, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{id}", get_file, methods=["GET"]),
    Route("/v1/files/{id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{id}/download", download, methods=["GET"]),
]
