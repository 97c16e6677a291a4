"""Prediction routes: create (by version, model or ``o/n[:id]``), get, list, cancel, and
the SSE stream. Semantics follow spec/replicate-api.md section 4."""

from __future__ import annotations

import functools
import math
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.builds import missing_version, no_ready_version
from vendo.api.v1.context import (
    Caller,
    Platform,
    base_url,
    cached,
    call,
    caller,
    header,
    json_body,
    page,
    parse_time,
    platform,
    secret_box,
    visible_model,
)
from vendo.api.v1.inputs import prepare_input, split_url
from vendo.api.v1.policy import can_see, owns
from vendo.api.v1.prediction_stream import stream_prediction
from vendo.api.v1.render import is_iterator, iterator_versions, prediction_json
from vendo.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    RequestError,
    VendoError,
)
from vendo.queue.events import terminal_events
from vendo.scheduler import tracing
from vendo.store import (
    STARTING,
    TERMINAL,
    FileRow,
    ModelRow,
    PredictionRow,
    VersionRow,
    new_id,
    utcnow,
)
from vendo.store.tables import transient_row

__all__ = [
    "cancel_run",
    "new_prediction",
    "owner_name",
    "parse_cancel_after",
    "parse_prefer_wait",
    "resolve_version",
    "routes",
]

WAIT_MAX = 60
WAIT_MARGIN = 0.3  # answer this much before the client's read timeout (N + 0.5 s)
MIN_CANCEL_AFTER = 5.0
# a cancel sent to the server running the prediction: how long the answer waits for it
REMOTE_CANCEL_WAIT = 5.0
# A deadline past this is a mistake (and one past year 9999 cannot be stored at all).
MAX_CANCEL_AFTER = 7 * 24 * 3600.0
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_prefer_wait(header: str | None) -> int | None:
    """``Prefer: wait`` -> 60, ``wait=N`` -> N clamped to 1..60; other tokens ignored."""
    if not header:
        return None
    for token in header.split(","):
        token = token.strip().lower()
        if token == "wait":
            return WAIT_MAX
        if token.startswith("wait="):
            try:
                seconds = int(float(token[5:].strip().strip('"')))
            except (ValueError, OverflowError):  # not a number, or inf/1e999
                continue
            return max(1, min(WAIT_MAX, seconds))
    return None


def parse_cancel_after(value: str) -> float:
    """``30s``, ``5m``, ``1h30m45s`` or a bare number of seconds (minimum 5 s, at most
    :data:`MAX_CANCEL_AFTER`)."""
    text = value.strip().lower()
    invalid = InvalidInput(
        [
            FieldError(
                "Cancel-After",
                "header",
                f"invalid duration {value[:40]!r}: use e.g. 30s, 5m, 1h30m or seconds, "
                f"at most {MAX_CANCEL_AFTER:g} seconds (7 days)",
            )
        ]
    )
    if len(text) > 64:  # no real duration is that long; float() of it would be slow
        raise invalid
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.match(text)
        if not text or match is None:
            raise invalid from None
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_CANCEL_AFTER:
        raise invalid
    return max(MIN_CANCEL_AFTER, seconds)


# --- resolving what to run ------------------------------------------------------------


async def _latest(request: Request, model: ModelRow) -> VersionRow:
    version = await cached(platform(request).store.cached.latest_version, model.id)
    if version is None:
        # still building, failed to build, or never pushed: say which
        raise await no_ready_version(request, model)
    return version


async def resolve_version(request: Request, who: Caller, ref: Any) -> VersionRow:
    """A ``version`` value: 64-hex id, ``owner/name:id`` or ``owner/name``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput([FieldError("version", "missing", "version is required")])
    ref = ref.strip()
    p = platform(request)
    if "/" not in ref:
        if not _HEX64.match(ref):
            raise NotFound(f"version {ref!r} not found")
        version = await cached(p.store.cached.version, ref)
        if version is None:
            raise await missing_version(request, who, ref)
        if not can_see(who, version.model):
            raise NotFound(f"version {ref} not found")
        return version
    name, _, version_id = ref.partition(":")
    owner, _, model_name = name.partition("/")
    model = await visible_model(request, who, owner, model_name, fresh=False)
    if not version_id:
        return await _latest(request, model)
    version = await cached(p.store.cached.version, version_id)
    if version is None or version.model_id != model.id:
        raise await missing_version(request, who, version_id, model)
    return version


# --- create ---------------------------------------------------------------------------


def _url_part(url: str, part: str) -> str:
    """``urlsplit(url).<part>``, or "" for what urlsplit refuses (``http://[::1``, an
    unclosed IPv6 bracket, raises ValueError): a bad URL is the caller's 422, not a 500."""
    try:
        return str(getattr(urlsplit(url), part))
    except ValueError:
        return ""


def _webhook_url_error(field: str, url: Any, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook URL, or None. The legacy ``webhook_completed``
    gets the same checks as ``webhook``: it is delivered the same way."""
    if not isinstance(url, str):
        return f"{field} must be an http(s) URL"
    try:
        parts = split_url(url)
    except RequestError as exc:
        return exc.detail
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{field} must be an http(s) URL"
    try:
        from vendo.webhooks.outbox import WebhookURLError, check_webhook_url
    except ImportError:  # webhooks not part of this build
        return None
    try:
        check_webhook_url(url, allow_private=allow_private)
    except WebhookURLError as exc:
        return str(exc)
    return None


def _webhook_fields(
    body: dict[str, Any], allow_private: bool
) -> tuple[str | None, list[str] | None]:
    webhook = body.get("webhook")
    events = body.get("webhook_events_filter")
    completed = body.get("webhook_completed")
    errors: list[FieldError] = []
    if webhook is not None:
        problem = _webhook_url_error("webhook", webhook, allow_private)
        if problem:
            errors.append(FieldError("webhook", "url", problem))
    if events is not None and (
        not isinstance(events, list) or any(e not in WEBHOOK_EVENTS for e in events)
    ):
        errors.append(
            FieldError(
                "webhook_events_filter",
                "enum",
                f"webhook_events_filter must be a list of {', '.join(WEBHOOK_EVENTS)}",
            )
        )
    if webhook is None and isinstance(completed, str):
        # legacy field, still sent by replicate 1.0.7: notify on completion only
        problem = _webhook_url_error("webhook_completed", completed, allow_private)
        if problem:
            errors.append(FieldError("webhook_completed", "url", problem))
        webhook, events = completed, ["completed"]
    if errors:
        raise InvalidInput(errors)
    return webhook, events


def _own_hosts(request: Request) -> set[str]:
    hosts = {_url_part(base_url(request), "netloc"), header(request, "host")}
    configured = platform(request).settings.public_url
    if configured:
        hosts.add(_url_part(configured, "netloc"))
    hosts.discard("")
    return hosts


async def _prepared_input(
    request: Request,
    who: Caller,
    version: VersionRow,
    body: dict[str, Any],
    folder: Path,
    component: str,
) -> Any:
    """The request's input, validated against ``component`` of the version's schema,
    its files fetched into ``folder``."""
    p = platform(request)

    async def lookup(file_id: str) -> FileRow | None:
        return await call(p.store.files.get, file_id)

    try:
        return await prepare_input(
            body.get("input"),
            version.openapi_schema or {},
            folder=folder,
            hosts=lambda: _own_hosts(request),
            lookup_file=lookup,
            storage=p.storage,
            may_use=lambda row: owns(who, row.owner_id),
            fetch_options={
                "max_bytes": p.settings.max_upload_bytes,
                "max_data_uri_bytes": p.settings.max_data_uri_bytes,
                "allow_private": p.settings.allow_private_urls,
            },
            component=component,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def new_prediction(
    request: Request,
    who: Caller,
    version: VersionRow,
    body: dict[str, Any],
    deployment: str | None = None,
    *,
    destination: str | None = None,
) -> PredictionRow:
    """The prediction a create request asks for, not yet stored; with a
    ``destination``, a training (its input is the version's ``TrainingInput``). An
    account out of credit is refused (402) before anything is made."""
    p = platform(request)
    await p.credit.require(who.user, version.model)
    webhook, events = _webhook_fields(body, p.settings.allow_private_urls)
    deadline: datetime | None = None
    cancel_after = header(request, "cancel-after")
    if cancel_after:
        seconds = parse_cancel_after(cancel_after)
        deadline = utcnow() + timedelta(seconds=seconds)
    prediction_id = new_id()
    folder = p.inputs_root / prediction_id
    component = "Input" if destination is None else "TrainingInput"
    prepared = await _prepared_input(request, who, version, body, folder, component)
    if prepared.files and p.storage.shared:
        # scaled mode: the prediction may run on another host; its files go to the bucket
        prepared.run = await call(
            p.storage.share_inputs, prediction_id, who.account.id, prepared.run, folder
        )
        await call(shutil.rmtree, folder, True)
    model = version.model
    return transient_row(
        PredictionRow,
        dict(
            id=prediction_id,
            kind="prediction" if destination is None else "training",
            owner_id=who.account.id,
            token_id=who.token.id if who.token else None,
            model_id=model.id,
            model=f"{model.owner.username}/{model.name}",
            version_id=version.id,
            deployment=deployment,
            destination=destination,
            input=prepared.shown,
            # sealed here, before anything (row, job, any later write) can store it
            run_input=secret_box(p).seal(prepared.run, prepared.secrets),
            input_dir=str(folder) if prepared.files and folder.exists() else None,
            output=None,
            logs="",
            status=STARTING,
            created_at=utcnow(),
            source=who.source,
            stream=bool(body.get("stream")),
            webhook=webhook,
            webhook_events_filter=events,
            deadline=deadline,
            data_removed=False,
            base_url=base_url(request),
        ),
    )


async def _run(
    p: Platform, row: PredictionRow, wait: float, *, read_back: bool = True
) -> PredictionRow:
    """Queue ``row`` (and run it), waiting up to ``wait`` seconds for its end; the
    prediction as it then stands (``row`` itself without ``read_back``)."""
    # Told before the prediction's first event: the relay then needs no read to know.
    relay = p.webhook_relay if row.webhook is None else None
    hint = functools.partial(relay.no_webhook, row.id) if relay is not None else None
    if p.scheduler is not None:
        # ended in time: the row we built, updated as the scheduler wrote it (no read)
        ended = await p.scheduler.run_and_wait(row, wait, count_run=True, before_queue=hint)
        if ended is not None:
            return ended
    else:
        if hint is not None:
            hint()
        await call(lambda: p.queue.submit(row, count_run=True))
        if p.cluster is not None:  # an API-only server: the others run it
            p.cluster.job_queued(row.version_id)
        if wait > 0:
            await p.bus.wait_done(row.id, wait)
    if not read_back:
        return row
    found: PredictionRow | None = await call(p.store.predictions.get, row.id)
    if found is None:
        raise VendoError(f"prediction {row.id} could not be recorded")
    return found


async def create_prediction(
    request: Request,
    who: Caller,
    version: VersionRow,
    body: dict[str, Any],
    *,
    deployment: str | None = None,
) -> Response:
    arrived = float(request.scope.get("vendo.arrived", time.monotonic()))
    p = platform(request)
    row = await new_prediction(request, who, version, body, deployment)
    tracing.remember(row.id)  # the scheduler's spans join this request's trace
    wait = parse_prefer_wait(header(request, "prefer"))
    headers: dict[str, str] = {}
    remaining = 0.0
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait}"
        remaining = wait - WAIT_MARGIN - (time.monotonic() - arrived)
    render = functools.partial(
        prediction_json,
        p,
        base_url(request),
        owner=who.account.username,
        streamable=is_iterator(version.openapi_schema),
    )
    if wait is None:
        # An async create answers with the prediction as it was accepted, not with
        # however far a quick model got before the reply was written: rendered before
        # the run can touch the row, sent once the prediction is recorded.
        data = render(row)
        await _run(p, row, 0.0, read_back=False)
    else:
        data = render(await _run(p, row, remaining))
    if data["status"] not in TERMINAL:
        # Both clients poll only while `starting`; 1.0.7 gives up on `processing`.
        data["status"] = STARTING
    headers["Location"] = data["urls"]["get"]
    return JSONResponse(data, status_code=201, headers=headers)


async def post_predictions(request: Request) -> Response:
    """Create a prediction (version: 64-hex id, owner/name:id or owner/name)."""
    who = await caller(request)
    body = await json_body(request)
    version = await resolve_version(request, who, body.get("version"))
    return await create_prediction(request, who, version, body)


async def post_model_predictions(request: Request) -> Response:
    """Create a prediction on the model's latest version."""
    who = await caller(request)
    body = await json_body(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    model = await visible_model(request, who, owner, name, fresh=False)
    version = await _latest(request, model)
    return await create_prediction(request, who, version, body)


# --- read -----------------------------------------------------------------------------


async def _owned(request: Request, who: Caller, prediction_id: str) -> PredictionRow:
    row = await call(platform(request).store.predictions.get, prediction_id)
    if row is None or row.kind != "prediction" or not owns(who, row.owner_id):
        raise NotFound(f"prediction {prediction_id} not found")
    return row


async def owner_name(p: Platform, who: Caller, row: PredictionRow) -> str:
    if row.owner_id == who.account.id:
        return who.account.username
    user = await call(p.store.accounts.user, row.owner_id)
    return user.username if user is not None else ""


async def _one(request: Request, p: Platform, who: Caller, row: PredictionRow) -> Response:
    """One prediction as the caller sees it (get and cancel answer with it)."""
    iterators = await iterator_versions(p, {row.version_id})
    data = prediction_json(
        p,
        base_url(request),
        row,
        owner=await owner_name(p, who, row),
        streamable=row.version_id in iterators,
    )
    return JSONResponse(data)


async def get_prediction(request: Request) -> Response:
    """Get a prediction."""
    who = await caller(request)
    p = platform(request)
    row = await _owned(request, who, request.path_params["id"])
    return await _one(request, p, who, row)


async def list_predictions(request: Request) -> Response:
    """List your predictions, newest first."""
    who = await caller(request)
    p = platform(request)
    params = request.query_params
    rows = await call(
        lambda: p.store.predictions.page(
            who.account.id,
            cursor=params.get("cursor"),
            created_after=parse_time("created_after", params.get("created_after")),
            created_before=parse_time("created_before", params.get("created_before")),
        )
    )
    base = base_url(request)
    iterators = await iterator_versions(p, {r.version_id for r in rows})
    results = [
        prediction_json(
            p, base, r, owner=who.account.username, streamable=r.version_id in iterators
        )
        for r in rows
    ]
    return page(request, results, rows.next_cursor, rows.previous_cursor)


async def cancel_run(p: Platform, row: PredictionRow) -> PredictionRow:
    """Cancel a prediction or training unless it has ended; the row as it then stands."""
    if row.status in TERMINAL:
        return row
    if p.scheduler is not None:
        here = await p.scheduler.cancel(row.id)
    else:
        finished = await call(p.queue.cancel_queued, row.id)
        here = finished is not None
        if finished is not None:
            for name, data in terminal_events(finished.status, finished.error):
                p.bus.publish(row.id, name, data)
    if not here and p.cluster is not None:
        # claimed by another server or agent sharing the database: it cancels it, and
        # its done comes back through the relay (the answer says so when in time). The
        # flag in the database reaches it should the relayed cancel not.
        await call(p.queue.request_cancel, row.id)
        await p.cluster.cancel(row.id)
        await p.bus.wait_done(row.id, REMOTE_CANCEL_WAIT)
    found: PredictionRow | None = await call(p.store.predictions.get, row.id)
    return found or row


async def cancel_prediction(request: Request) -> Response:
    """Cancel a prediction."""
    who = await caller(request)
    p = platform(request)
    row = await _owned(request, who, request.path_params["id"])
    return await _one(request, p, who, await cancel_run(p, row))


routes = [
    Route("/v1/predictions", post_predictions, methods=["POST"]),
    Route("/v1/predictions", list_predictions, methods=["GET"]),
    Route("/v1/predictions/{id}", get_prediction, methods=["GET"]),
    Route("/v1/predictions/{id}/cancel", cancel_prediction, methods=["POST"]),
    Route("/v1/predictions/{id}/stream", stream_prediction, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/predictions", post_model_predictions, methods=["POST"]),
]
