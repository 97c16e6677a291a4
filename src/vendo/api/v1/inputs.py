"""A prediction's ``input``: validation against the version's schema, file inputs turned
into local paths for the runner, secrets masked for display."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from anyio import to_thread

from vendo.errors import FieldError, InvalidInput, RequestError
from vendo.files.fetch import fetch_input
from vendo.files.storage import FileStorage
from vendo.schema.validation import InputValidationError, ValidatedInput, validate_input
from vendo.store import FileRow

__all__ = ["PreparedInput", "prepare_input", "split_url", "unfit_input"]

SECRET_MASK = "**********"
_OWN_FILE = re.compile(r"^/v1/files/([a-z0-9]{8,32})(/download)?/?$")


@dataclass
class PreparedInput:
    shown: dict[str, Any]  # what the API shows (caller's values, secrets masked)
    run: dict[str, Any]  # what the runner gets (local paths, real secrets)
    files: bool = False  # some input is a file: ``folder`` may hold it
    # the secret inputs: sealed before ``run`` is stored (vendo.store.sealing)
    secrets: list[str] = field(default_factory=list)


def _components(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = (schema.get("components") or {}).get("schemas") or {}
    return found


def _is_file(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "string" and prop.get("format") == "uri"


def _is_secret(prop: dict[str, Any]) -> bool:
    return bool(prop.get("x-cog-secret")) or prop.get("format") == "password"


async def prepare_input(
    payload: Any,
    openapi_schema: dict[str, Any],
    *,
    folder: Path,
    hosts: Callable[[], set[str]],
    lookup_file: Callable[[str], Awaitable[FileRow | None]],
    storage: FileStorage,
    may_use: Callable[[FileRow], bool],
    fetch_options: dict[str, Any],
    component: str = "Input",
) -> PreparedInput:
    """Validate ``payload`` (422 naming each bad field) against the schema's
    ``component`` (``TrainingInput`` for a training) and resolve its file inputs into
    ``folder``. ``hosts()`` gives this server's own host names, asked only when an
    input is a URL: ``/v1/files/{id}`` URLs on them resolve in-process, and only to
    files ``may_use`` allows."""
    valid, properties = _validate(payload, openapi_schema, component)
    files = False

    async def local(value: str) -> str:
        nonlocal files
        files = True
        return await _local(value, folder, hosts, lookup_file, storage, may_use, fetch_options)

    shown: dict[str, Any] = {}
    run: dict[str, Any] = {}
    secrets: list[str] = []
    for name, value in valid.items():
        prop = properties.get(name) or {}
        items = prop.get("items") if prop.get("type") == "array" else None
        shown[name] = payload[name]
        if _is_secret(prop) or (isinstance(items, dict) and _is_secret(items)):
            secrets.append(name)
            shown[name] = _masked(value, payload[name])
        run[name] = value
        try:
            if _is_file(prop) and isinstance(value, str):
                run[name] = await local(value)
            elif isinstance(items, dict) and _is_file(items) and isinstance(value, list):
                run[name] = [await local(v) if isinstance(v, str) else v for v in value]
        except InvalidInput:
            raise
        except RequestError as exc:
            if exc.status == 413:
                raise
            raise InvalidInput([FieldError(name, "file", exc.detail)]) from None
    # Ignored as on Cog, but by name only (valued null) the runner gets them: it starts
    # the prediction's logs with a warning naming each and the closest known input.
    for name in valid.unknown:
        run[name] = None
    return PreparedInput(shown=shown, run=run, files=files, secrets=secrets)


def _validate(
    payload: Any, openapi_schema: dict[str, Any], component: str = "Input"
) -> tuple[ValidatedInput, dict[str, Any]]:
    """The valid inputs, and the Input schema's properties that say which are files or
    secrets; 422 naming each bad field otherwise."""
    if payload is None:
        raise InvalidInput([FieldError("input", "missing", "input is required")])
    if not isinstance(payload, dict):
        raise InvalidInput([FieldError("input", "type", "input must be a JSON object")])
    components = _components(openapi_schema)
    input_schema = components.get(component)
    if not isinstance(input_schema, dict):
        # a version without an Input schema takes no inputs at all
        input_schema = {"type": "object", "properties": {}}
    try:
        valid = validate_input(input_schema, payload, components)
    except InputValidationError as exc:
        raise InvalidInput(
            [
                FieldError(str(e["loc"][-1]), str(e.get("type", "value_error")), str(e["msg"]))
                for e in exc.errors
            ]
        ) from None
    properties: dict[str, Any] = input_schema.get("properties") or {}
    return valid, properties


def unfit_input(
    shown: dict[str, Any], run: dict[str, Any], openapi_schema: dict[str, Any]
) -> str | None:
    """What of a stored prediction's input another version's schema refuses (``"count:
    Input should be ..."``), None when it fits. ``shown`` is its ``input`` (secrets
    masked), ``run`` its opened ``run_input``: a masked value is checked as it was given,
    a file input as the URL it was given."""
    payload = {
        name: run[name] if name in run and _is_mask(value) else value
        for name, value in shown.items()
    }
    try:
        _validate(payload, openapi_schema)
    except InvalidInput as exc:
        return exc.detail
    return None


def _is_mask(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(v == SECRET_MASK for v in value)
    return value == SECRET_MASK


def _masked(value: Any, given: Any) -> Any:
    """How a secret input is shown: each value masked, a null left as it was given."""
    if isinstance(value, list):
        return [SECRET_MASK] * len(value)
    if value is not None:
        return SECRET_MASK
    return given


def split_url(value: str) -> SplitResult:
    """``urlsplit(value)`` of a URL whose port and host name are well formed, else the
    caller's error (the downloader would raise ValueError or UnicodeError: a 500)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for "x:abc" or "x:99999"
        if parts.scheme in ("http", "https") and parts.hostname:
            parts.hostname.encode("idna")  # an empty or over-long label ("a..b")
    except (ValueError, UnicodeError):
        raise RequestError(f"not a valid URL: {value[:60]!r}") from None
    return parts


async def _local(
    value: str,
    folder: Path,
    hosts: Callable[[], set[str]],
    lookup_file: Callable[[str], Awaitable[FileRow | None]],
    storage: FileStorage,
    may_use: Callable[[FileRow], bool],
    fetch_options: dict[str, Any],
) -> str:
    parts = split_url(value)
    if parts.scheme in ("http", "https") and parts.netloc in hosts():
        match = _OWN_FILE.match(parts.path)
        if match:
            return await _own_file(
                match.group(1),
                parts.query,
                match.group(2) is not None,
                folder,
                lookup_file,
                storage,
                may_use,
            )
    if not value.startswith(("http://", "https://", "data:")):
        raise RequestError(f"expected an http(s) URL or a data: URI, got {value[:60]!r}")
    path = await fetch_input(value, folder, **fetch_options)
    return str(path)


async def _own_file(
    file_id: str,
    query: str,
    signed: bool,
    folder: Path,
    lookup_file: Callable[[str], Awaitable[FileRow | None]],
    storage: FileStorage,
    may_use: Callable[[FileRow], bool],
) -> str:
    row = await lookup_file(file_id)
    if signed and row is not None:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        ok = storage.verify(
            file_id, params.get("owner", ""), params.get("expiry", ""), params.get("signature", "")
        )
        if not ok:
            raise RequestError(f"the signed URL of file {file_id} is invalid or expired")
    if row is None or not may_use(row):
        raise RequestError(f"file {file_id} does not exist or is not yours")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{file_id}-{row.key.rsplit('/', 1)[-1]}"
    # A copy, not a link: a model that writes to its input must not change the upload.
    try:
        await to_thread.run_sync(storage.copy_to, row, target)
    except FileNotFoundError:
        raise RequestError(f"file {file_id} has expired") from None
    return str(target)
